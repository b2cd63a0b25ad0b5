#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from their upstream Go modules, the way
# controller-runtime's envtest ships them, and caches the binaries outside the repo.
#
# k8s.io/kubernetes requires its staging modules at v0.0.0 with replace directives into
# ./staging, which a dependent module does not inherit, so `go install ...@version` fails.
# A small wrapper module requires k8s.io/kubernetes and replaces each staging module with
# its published v0.N.P release. etcd's server is a library, so a one-line main builds it.
#
# Usage: scripts/build-envtest.sh            prints the directory holding the binaries
# Env:   DBTETHER_CACHE (default ~/.cache/dbtether), K8S_VERSION, ETCD_VERSION
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.36.3}
# The etcd release that Kubernetes ${K8S_VERSION} is built and tested with (its go.mod).
ETCD_VERSION=${ETCD_VERSION:-v3.6.8}
CACHE=${DBTETHER_CACHE:-$HOME/.cache/dbtether}
OUT="$CACHE/envtest/$K8S_VERSION"
WORK="$CACHE/envtest/build-$K8S_VERSION"

log() { printf 'build-envtest: %s\n' "$*" >&2; }

if [[ -x "$OUT/kube-apiserver" && -x "$OUT/kubectl" && -x "$OUT/etcd" ]]; then
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || { log "Go is required to build kube-apiserver and etcd: install it first"; exit 1; }
mkdir -p "$OUT" "$WORK/k8s" "$WORK/etcd"
# Two first runs at once (two worktrees, a test and `make deps`) would write the same .tmp files
# and go.mod: the second waits for the first, then finds the binaries built.
exec 9>"$CACHE/envtest/.build-$K8S_VERSION.lock"
if ! flock -n 9; then
  log "another build is running; waiting for it"
  flock 9
fi
if [[ -x "$OUT/kube-apiserver" && -x "$OUT/kubectl" && -x "$OUT/etcd" ]]; then
  echo "$OUT"
  exit 0
fi
export GOFLAGS="${GOFLAGS:-} -trimpath" CGO_ENABLED=0

minor=${K8S_VERSION#v1.}
minor=${minor%%.*}
staging_version="v0.${K8S_VERSION#v1.}"

# --- kube-apiserver and kubectl -------------------------------------------------------
if [[ ! -x "$OUT/kube-apiserver" || ! -x "$OUT/kubectl" ]]; then
  log "building kube-apiserver and kubectl $K8S_VERSION (first run only; takes several minutes)"
  cd "$WORK/k8s"
  mod=$(curl -fsSL "$(go env GOPROXY | cut -d, -f1)/k8s.io/kubernetes/@v/$K8S_VERSION.mod" 2>/dev/null || true)
  if [[ -z "$mod" ]]; then
    # Fall back to the module cache through the go command itself.
    go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null
    mod=$(cat "$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod")
  fi
  {
    echo "module dbtether.io/envtest-k8s"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    # Every "k8s.io/x => ./staging/src/k8s.io/x" becomes "k8s.io/x => k8s.io/x v0.N.P".
    printf '%s\n' "$mod" | awk -v v="$staging_version" '$2 == "=>" && $3 ~ /^\.\/staging\// { printf "\t%s => %s %s\n", $1, $1, v }'
    echo ")"
  } >go.mod
  cat >tools.go <<GO
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  # sample-cli-plugin is not published on the proxy; nothing we build imports it.
  sed -i '/sample-cli-plugin/d' go.mod
  go mod tidy -e >/dev/null 2>&1 || true
  go get "k8s.io/kubernetes@$K8S_VERSION" >/dev/null 2>&1 || true
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  go build -tags tools -ldflags "$ldflags" -o "$OUT/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  go build -tags tools -ldflags "$ldflags" -o "$OUT/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl
  mv "$OUT/kube-apiserver.tmp" "$OUT/kube-apiserver"
  mv "$OUT/kubectl.tmp" "$OUT/kubectl"
fi

# --- etcd -------------------------------------------------------------------------------
if [[ ! -x "$OUT/etcd" ]]; then
  log "building etcd $ETCD_VERSION"
  cd "$WORK/etcd"
  cat >go.mod <<MOD
module dbtether.io/envtest-etcd

go 1.26

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
  cat >main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  go mod tidy >/dev/null
  go build -ldflags "-s -w" -o "$OUT/etcd.tmp" .
  mv "$OUT/etcd.tmp" "$OUT/etcd"
fi

echo "$OUT"

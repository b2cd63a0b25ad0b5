#!/usr/bin/env bash
# Builds helm from its Go module (helm.sh/helm/v3, pinned) into the cache, for the chart tests.
# Prints the binary's path.
set -euo pipefail
HELM_VERSION=${HELM_VERSION:-v3.22.0}
CACHE=${DBTETHER_CACHE:-$HOME/.cache/dbtether}
dir="$CACHE/helm/$HELM_VERSION"
if [[ ! -x "$dir/helm" ]]; then
  command -v go >/dev/null || { echo "install-helm: Go is required" >&2; exit 1; }
  echo "install-helm: building helm $HELM_VERSION from its Go module (first run only)" >&2
  rm -rf "$dir/.tmp" && mkdir -p "$dir/.tmp"
  GOBIN="$dir/.tmp" CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -trimpath" \
    go install -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$dir/.tmp/helm" "$dir/helm"
  rm -rf "$dir/.tmp"
fi
echo "$dir/helm"

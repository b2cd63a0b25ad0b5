#!/usr/bin/env bash
# Fetches External Secrets Operator's PushSecret and SecretStore CRDs from its Go module through
# the Go module proxy (github.com/external-secrets/external-secrets, pinned; Go checks the
# module's hash against the checksum database, the files' sha256 are pinned here), into the
# cache, for tests/secret_delivery_test.ts, which applies examples/eso/ against their real
# schemas. Prints the directory holding the two files.
set -euo pipefail
ESO_VERSION=${ESO_VERSION:-v1.3.2}
# sha256 of config/crds/bases/<file> in v1.3.2.
declare -A SHA256=(
  [external-secrets.io_pushsecrets.yaml]=fce0972b3475b4faae2a674b1f31dfb21c5a21bb6df8d8dacf61d7f711f97623
  [external-secrets.io_secretstores.yaml]=ef1fc349941cea1d56b87f8c31cf05a9fed85b7c000a60e69c6b2b29a13fa648
)
CACHE=${DBTETHER_CACHE:-$HOME/.cache/dbtether}
dir="$CACHE/external-secrets/$ESO_VERSION"
check() { echo "${SHA256[$1]}  $2" | sha256sum --check --quiet --status; }
cached() {
  local f
  for f in "${!SHA256[@]}"; do [[ -f "$dir/$f" ]] && check "$f" "$dir/$f" || return 1; done
}
if ! cached; then
  echo "install-eso-crds: fetching external-secrets $ESO_VERSION (first run only)" >&2
  src=$("$(dirname "$0")/go-module-dir.sh" github.com/external-secrets/external-secrets \
    "$ESO_VERSION")/config/crds/bases
  mkdir -p "$dir"
  for f in "${!SHA256[@]}"; do
    [[ -f "$src/$f" ]] || { echo "install-eso-crds: no $f in the module" >&2; exit 1; }
    check "$f" "$src/$f" || {
      echo "install-eso-crds: $f of $ESO_VERSION does not match its pinned sha256" >&2
      exit 1
    }
    cp "$src/$f" "$dir/$f.tmp"
    chmod 644 "$dir/$f.tmp"
    mv "$dir/$f.tmp" "$dir/$f"
  done
fi
echo "$dir"

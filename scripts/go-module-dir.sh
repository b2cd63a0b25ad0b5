#!/usr/bin/env bash
# Prints the extracted directory of Go module $1 at version $2, downloaded through the Go module
# proxy (Go checks its hash against the checksum database). For the install-*-crds.sh scripts,
# which take CRD files from projects' published modules.
set -euo pipefail
command -v go >/dev/null || { echo "go-module-dir: Go is required" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Outside any module: `go mod download` of a module path@version needs no go.mod.
json=$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "$1@$2")
dir=$(printf '%s' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -n $dir && -d $dir ]] || { echo "go-module-dir: no directory for $1@$2: $json" >&2; exit 1; }
echo "$dir"

#!/usr/bin/env bash
# Compiles the dbtether binary for one target: the one compile command, used by `make compile`
# (every release target) and by the Dockerfile, so the image and the release binaries carry the
# same permission flags (scripts/permissions.sh) as the program the tests run.
#
# Usage: scripts/compile.sh TARGET OUTPUT        e.g. x86_64-unknown-linux-gnu dist/dbtether
#        scripts/compile.sh --print TARGET OUTPUT   prints the command instead of running it
# DENO names the deno to use (default: deno on PATH). `deno compile` downloads its runtime
# (denort) for TARGET from dl.deno.land on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
print=false
if [[ ${1:-} == --print ]]; then print=true; shift; fi
[[ $# -eq 2 ]] || { echo "usage: scripts/compile.sh [--print] TARGET OUTPUT" >&2; exit 2; }
target=$1 output=$2
mapfile -t perms < <(bash scripts/permissions.sh)
cmd=("${DENO:-deno}" compile "${perms[@]}" --include backup/compress_worker.ts
  --target "$target" --output "$output" main.ts)
if $print; then printf '%s\n' "${cmd[@]}"; else "${cmd[@]}"; fi

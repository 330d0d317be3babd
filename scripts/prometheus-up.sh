#!/usr/bin/env bash
# Makes sure `prometheus` and `promtool` are on this machine (Debian package `prometheus`, apt), for the rule tests,
# the Prometheus test and `scripts/demo.sh --monitoring`. Idempotent; installs nothing when both are present. The
# package's own service is not used (the tests and the demo start Prometheus themselves on free ports).
set -euo pipefail
log() { echo "[prometheus-up] $*" >&2; }
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
log "installing prometheus (apt)"
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends prometheus >&2
# Where a service manager runs, the package starts its own Prometheus on :9090; this project does not need it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  $SUDO systemctl disable --now prometheus >&2 || true
fi
command -v promtool >/dev/null 2>&1 || { log "promtool missing after the install"; exit 1; }

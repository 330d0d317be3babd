#!/usr/bin/env bash
# Runs every test against real services: brings up PostgreSQL and RabbitMQ on loopback (or reuses them),
# exports their connection settings, installs Prometheus/promtool (apt) for the monitoring tests, then
# `dotnet test Worker.sln`. Extra arguments go to dotnet test.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/services-up.sh)"
scripts/prometheus-up.sh
dotnet tool restore >/dev/null
dotnet test Worker.sln --logger "console;verbosity=normal" "$@"

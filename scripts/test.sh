#!/usr/bin/env bash
# Runs every test against real services: brings up PostgreSQL and RabbitMQ on loopback (or reuses them),
# exports their connection settings, installs Prometheus/promtool (apt) for the monitoring tests, then
# `dotnet test Worker.sln`. Extra arguments go to dotnet test.
set -euo pipefail
cd "$(dirname "$0")/.."
services_env=$(scripts/services-up.sh)  # a failure stops the script (set -e); eval "$(…)" would hide it
eval "$services_env"
scripts/prometheus-up.sh
dotnet tool restore >/dev/null
dotnet test Worker.sln --logger "console;verbosity=normal" "$@"

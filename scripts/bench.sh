#!/usr/bin/env bash
# Every benchmark in one run, one table: brings up PostgreSQL and RabbitMQ on loopback (or reuses them), builds the
# worker and the scenario runner in Release, then runs every scenario (tests/Worker.Benchmarks; README "Benchmarks").
# Extra arguments go to the runner, e.g. `scripts/bench.sh drain --drain-rps=30`, `scripts/bench.sh priority` (hot leads
# during a bulk drain, with and without priority lanes), `scripts/bench.sh compare` (the worker
# side by side with a MassTransit batch consumer and one call per message) or `scripts/bench.sh all --rss-seconds=60`.
set -euo pipefail
cd "$(dirname "$0")/.."
services_env=$(scripts/services-up.sh)  # a failure stops the script (set -e); eval "$(…)" would hide it
eval "$services_env"
dotnet build src/Worker.Host -c Release -nologo -v quiet
dotnet build tests/Worker.Benchmarks -c Release -nologo -v quiet
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(all)
# The worker processes run what the image runs: published ReadyToRun (src/Worker.Host/Dockerfile), so a replica's start
# compiles little; three replicas started together on 2 cores otherwise slow each other for their first seconds.
# A --worker-dll of your own (any case, as the runner reads options) is used instead.
if [[ " ${args[*],,} " != *" --worker-dll="* ]]; then
  dotnet publish src/Worker.Host -c Release -r linux-x64 --self-contained false -p:PublishReadyToRun=true \
    -p:UseAppHost=false -o .bench/worker -nologo -v quiet
  args+=("--worker-dll=$PWD/.bench/worker/Worker.Host.dll")
fi
dotnet run -c Release --no-build --project tests/Worker.Benchmarks -- "${args[@]}"

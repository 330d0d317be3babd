#!/usr/bin/env bash
# The main job, end to end on this machine: brings up PostgreSQL and RabbitMQ, builds, migrates, starts the
# Gong simulator and the worker, publishes a realistic workload through RabbitMQ as an upstream system would,
# shows progress while it drains and ends with a summary. Exit code non-zero if anything is lost or stuck.
#
#   scripts/demo.sh                       # default: 2,000 requests over 40 flow/owner pairs
#   scripts/demo.sh --requests 500        # arguments go to the demo driver (tests/Worker.Demo)
#   DEMO_CALLS_PER_SECOND=3 scripts/demo.sh --requests 100 --timeout 600   # Gong's real limit
#
# The simulator's rate limit is raised for the demo (DEMO_CALLS_PER_SECOND, default 30 calls/s; Gong's is 3)
# so the default run ends within about two minutes; the worker is configured with the same limit.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
rate="${DEMO_CALLS_PER_SECOND:-30}"
sim_url="http://127.0.0.1:${DEMO_SIMULATOR_PORT:-5080}"
worker_url="http://127.0.0.1:${DEMO_WORKER_PORT:-8080}"
logs="$root/.demo"
mkdir -p "$logs"

eval "$(scripts/services-up.sh)"
# Local defaults (appsettings.Development.json) fill whatever the environment above does not set.
export DOTNET_ENVIRONMENT=Development

echo "Building (Release)..."
dotnet build src/Worker.Host -c Release -nologo -v quiet
dotnet build tests/Gong.Simulator -c Release -nologo -v quiet
dotnet build tests/Worker.Demo -c Release -nologo -v quiet

echo "Applying migrations..."
dotnet src/Worker.Host/bin/Release/net10.0/Worker.Host.dll migrate

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

echo "Starting the Gong simulator on $sim_url (limit $rate calls/s; log: .demo/simulator.log)..."
dotnet tests/Gong.Simulator/bin/Release/net10.0/Gong.Simulator.dll --urls "$sim_url" \
  --rps "$rate" --daily-limit 0 --latency-min-ms 80 --latency-max-ms 400 \
  --Simulator:Flows:0:Id=1695493301223599999 --Simulator:Flows:0:Name="Exclusive nurture" --Simulator:Flows:0:Exclusive=true \
  >"$logs/simulator.log" 2>&1 &
pids+=($!)

echo "Starting the worker on $worker_url (log: .demo/worker.log)..."
Urls="$worker_url" \
Gong__BaseUrl="$sim_url" Gong__AccessKey=sim-access-key Gong__AccessKeySecret=sim-access-key-secret \
Gong__RequestsPerSecond="$rate" Gong__DailyCallLimit=1000000 \
  dotnet src/Worker.Host/bin/Release/net10.0/Worker.Host.dll run >"$logs/worker.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 120); do
  curl -fsS "$sim_url/_sim/stats" >/dev/null 2>&1 && curl -fsS "$worker_url/health/ready" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS "$worker_url/health/ready" >/dev/null || { echo "worker did not become ready; see .demo/worker.log"; tail -20 "$logs/worker.log"; exit 1; }

set +e
dotnet tests/Worker.Demo/bin/Release/net10.0/Worker.Demo.dll \
  --postgres "$ConnectionStrings__Postgres" \
  --rabbitmq "amqp://$RabbitMq__Username:$RabbitMq__Password@$RabbitMq__Host:$RabbitMq__Port/$RabbitMq__VirtualHost" \
  --simulator "$sim_url" --calls-per-second "$rate" "$@"
status=$?
set -e
echo "Worker and simulator logs: .demo/worker.log, .demo/simulator.log"
exit $status

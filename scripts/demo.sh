#!/usr/bin/env bash
# The main job, end to end on this machine: brings up PostgreSQL and RabbitMQ, builds, migrates, starts the
# Gong simulator and the worker, publishes a realistic workload through RabbitMQ as an upstream system would,
# shows progress while it drains and ends with a summary. Exit code non-zero if anything is lost or stuck.
#
#   scripts/demo.sh                       # default: 2,000 requests over 40 flow/owner pairs
#   scripts/demo.sh --requests 500        # arguments go to the demo driver (tests/Worker.Demo)
#   DEMO_CALLS_PER_SECOND=3 scripts/demo.sh --requests 100 --timeout 600   # Gong's real limit
#   scripts/demo.sh --monitoring          # also a local Prometheus with the alert rules (deploy/monitoring) scraping
#                                         # the worker: prints its URL, and at the end the alerts that fired
#   DEMO_UNAUTHORIZED_SECONDS=150 scripts/demo.sh --monitoring --requests 300   # Gong answers 401 for the first 150 s
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

# --monitoring is the script's own switch; every other argument goes to the demo driver.
monitoring=""
args=()
for arg in "$@"; do
  if [ "$arg" = "--monitoring" ]; then monitoring=1; else args+=("$arg"); fi
done
set -- "${args[@]+"${args[@]}"}"

# A free loopback port from $1 upwards (nothing accepts a connection on it).
free_port() {
  local port="$1"
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}

services_env=$(scripts/services-up.sh)  # a failure stops the script (set -e); eval "$(…)" would hide it
eval "$services_env"
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

if [ -n "$monitoring" ]; then
  scripts/prometheus-up.sh
  prom_dir="$logs/prometheus"
  rm -rf "$prom_dir" && mkdir -p "$prom_dir"
  scripts/monitoring-rules.sh > "$prom_dir/rules.yaml"
  cat > "$prom_dir/prometheus.yml" <<PROMETHEUS
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files:
  - rules.yaml
scrape_configs:
  - job_name: gong-flow-worker
    static_configs:
      - targets: ['${worker_url#http://}']
PROMETHEUS
  prom_url="http://127.0.0.1:$(free_port "${DEMO_PROMETHEUS_PORT:-19090}")"
  echo "Starting Prometheus on $prom_url with the alert rules of deploy/monitoring (log: .demo/prometheus.log)..."
  prometheus --config.file="$prom_dir/prometheus.yml" --storage.tsdb.path="$prom_dir/data" \
    --web.listen-address="${prom_url#http://}" >"$logs/prometheus.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 60); do curl -fsS "$prom_url/-/ready" >/dev/null 2>&1 && break; sleep 0.5; done
  curl -fsS "$prom_url/-/ready" >/dev/null || { echo "Prometheus did not start; see .demo/prometheus.log"; exit 1; }
  echo "Prometheus: $prom_url (alerts: $prom_url/alerts, graph: $prom_url/graph)"
fi

if [ -n "${DEMO_UNAUTHORIZED_SECONDS:-}" ]; then
  echo "Gong simulator answers 401 for the next $DEMO_UNAUTHORIZED_SECONDS s (a credentials outage)..."
  curl -fsS -X PUT "$sim_url/_sim/faults" -H 'Content-Type: application/json' \
    -d "{\"latencyMinMs\": 80, \"latencyMaxMs\": 400, \"unauthorizedForSeconds\": $DEMO_UNAUTHORIZED_SECONDS}" >/dev/null
fi

set +e
dotnet tests/Worker.Demo/bin/Release/net10.0/Worker.Demo.dll \
  --postgres "$ConnectionStrings__Postgres" \
  --rabbitmq "amqp://$RabbitMq__Username:$RabbitMq__Password@$RabbitMq__Host:$RabbitMq__Port/$RabbitMq__VirtualHost" \
  --simulator "$sim_url" --calls-per-second "$rate" "$@"
status=$?
set -e
echo "Worker and simulator logs: .demo/worker.log, .demo/simulator.log"
if [ -n "$monitoring" ]; then
  sleep 6   # one more scrape and rule evaluation after the drain
  echo
  echo "Prometheus: $prom_url"
  # promtool prints nothing for an empty result: say "(none)" so a clean run does not look like a failed query.
  alerts() {
    local out
    if out=$(promtool query instant "$prom_url" "$1"); then
      if [ -n "$out" ]; then echo "$out"; else echo "  (none)"; fi
    else
      echo "  (query failed: $prom_url)"
    fi
  }
  echo "Alerts that fired during the run (evaluations while firing):"
  alerts 'sort_desc(count_over_time(ALERTS{alertstate="firing"}[1d]))'
  echo "Alerts firing now:"
  alerts 'ALERTS{alertstate="firing"}'
  if [ -t 0 ]; then read -r -p "Prometheus keeps running: press Enter to stop everything. " _; fi
fi
exit $status

#!/usr/bin/env bash
# Brings up PostgreSQL and RabbitMQ on loopback for the worker, the tests, the demo and the benchmarks.
# Idempotent: safe to run any number of times; a second run changes nothing.
# With a working Docker engine it uses `docker compose up -d postgres rabbitmq`; otherwise it starts
# Debian's PostgreSQL 15 cluster and installs/starts rabbitmq-server (apt) on this machine.
# Prints the connection settings as `export` lines on stdout (progress goes to stderr), so
# `eval "$(scripts/services-up.sh)"` configures the current shell.
set -euo pipefail

PG_USER="${WORKER_PG_USER:-worker}"
PG_PASSWORD="${WORKER_PG_PASSWORD:-worker}"
PG_DB="${WORKER_PG_DB:-worker}"
MQ_USER="${WORKER_MQ_USER:-worker}"
MQ_PASSWORD="${WORKER_MQ_PASSWORD:-worker}"
MQ_VHOST="${WORKER_MQ_VHOST:-worker}"

log() { echo "[services-up] $*" >&2; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if docker info >/dev/null 2>&1; then
  log "Docker engine found: docker compose up -d postgres rabbitmq"
  root="$(cd "$(dirname "$0")/.." && pwd)"
  docker compose -f "$root/docker-compose.yml" up -d --wait postgres rabbitmq >&2
else
  # --- PostgreSQL 15 (preinstalled on this machine kind) ---
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    log "installing postgresql (apt)"
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq postgresql >&2
  fi
  if ! pg_lsclusters -h 2>/dev/null | awk '$1=="15" && $2=="main" {found=1} END {exit !found}'; then
    log "creating PostgreSQL cluster 15/main"
    $SUDO pg_createcluster 15 main >&2
  fi
  if ! pg_lsclusters -h | awk '$1=="15" && $2=="main" && $4=="online" {found=1} END {exit !found}'; then
    log "starting PostgreSQL 15/main"
    $SUDO pg_ctlcluster 15 main start >&2
  fi
  for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
  pg_isready -h 127.0.0.1 -p 5432 >&2 || { log "PostgreSQL did not become ready"; exit 1; }

  # --- RabbitMQ ---
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    log "installing rabbitmq-server (apt, takes a minute)"
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq rabbitmq-server >&2
  fi
  # The management plugin gives the UI and the HTTP API the tests use to create a vhost per test.
  if [ ! -f /etc/rabbitmq/enabled_plugins ] || ! grep -q rabbitmq_management /etc/rabbitmq/enabled_plugins; then
    $SUDO rabbitmq-plugins enable --offline rabbitmq_management >&2
  fi
  if ! $SUDO rabbitmqctl -q status >/dev/null 2>&1; then
    log "starting rabbitmq-server (detached)"
    $SUDO rabbitmq-server -detached >&2 || true
  fi
  # await_startup can fail while the node is still booting (e.g. right after apt started it): retry.
  ok=""
  for _ in $(seq 1 24); do
    if $SUDO rabbitmqctl -q await_startup --timeout 10 >/dev/null 2>&1; then ok=1; break; fi
    sleep 5
  done
  [ -n "$ok" ] || { log "RabbitMQ did not start; see /var/log/rabbitmq/"; exit 1; }
fi

# --- PostgreSQL role and database (as the postgres superuser) ---
psql_admin() {
  if docker info >/dev/null 2>&1; then
    PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -qAt "$@"
  else
    $SUDO -u postgres psql -v ON_ERROR_STOP=1 -qAt "$@" 2>/dev/null || su postgres -c "psql -v ON_ERROR_STOP=1 -qAt $(printf '%q ' "$@")"
  fi
}
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname='$PG_USER'")" != "1" ]; then
  log "creating role $PG_USER"
  psql_admin -c "CREATE ROLE \"$PG_USER\" LOGIN CREATEDB PASSWORD '$PG_PASSWORD'"
fi
# Tests drop their databases WITH (FORCE), which must be allowed to end the worker role's other sessions.
psql_admin -c "GRANT pg_signal_backend TO \"$PG_USER\"" >/dev/null
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname='$PG_DB'")" != "1" ]; then
  log "creating database $PG_DB"
  psql_admin -c "CREATE DATABASE \"$PG_DB\" OWNER \"$PG_USER\""
fi

# --- RabbitMQ user and vhost ---
if ! docker info >/dev/null 2>&1; then
  if ! $SUDO rabbitmqctl -q list_users | awk '{print $1}' | grep -qx "$MQ_USER"; then
    log "creating RabbitMQ user $MQ_USER"
    $SUDO rabbitmqctl -q add_user "$MQ_USER" "$MQ_PASSWORD" >&2
  fi
  # administrator: the tests create and delete one vhost per test through the management API.
  $SUDO rabbitmqctl -q set_user_tags "$MQ_USER" administrator >&2
  if ! $SUDO rabbitmqctl -q list_vhosts | grep -qx "$MQ_VHOST"; then
    $SUDO rabbitmqctl -q add_vhost "$MQ_VHOST" >&2
  fi
  $SUDO rabbitmqctl -q set_permissions -p "$MQ_VHOST" "$MQ_USER" ".*" ".*" ".*" >&2
  for _ in $(seq 1 60); do curl -fsS -u "$MQ_USER:$MQ_PASSWORD" http://127.0.0.1:15672/api/overview >/dev/null 2>&1 && break; sleep 0.5; done
fi

cat <<SETTINGS
export ConnectionStrings__Postgres="Host=127.0.0.1;Port=5432;Database=$PG_DB;Username=$PG_USER;Password=$PG_PASSWORD"
export RabbitMq__Host="127.0.0.1"
export RabbitMq__Port="5672"
export RabbitMq__VirtualHost="$MQ_VHOST"
export RabbitMq__Username="$MQ_USER"
export RabbitMq__Password="$MQ_PASSWORD"
export TEST_POSTGRES="Host=127.0.0.1;Port=5432;Database=postgres;Username=$PG_USER;Password=$PG_PASSWORD"
export TEST_RABBITMQ="amqp://$MQ_USER:$MQ_PASSWORD@127.0.0.1:5672/"
export TEST_RABBITMQ_MANAGEMENT="http://127.0.0.1:15672"
SETTINGS
log "services ready"

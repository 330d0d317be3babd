#!/usr/bin/env bash
# The main job: brings up PostgreSQL and RabbitMQ, applies migrations, and runs the worker
# (Ctrl+C stops it). Extra arguments go to the worker's configuration (e.g. --Gong:BaseUrl=...).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/services-up.sh)"
dotnet build src/Worker.Host -c Release -nologo -v quiet
dotnet run --project src/Worker.Host -c Release --no-build -- migrate
exec dotnet run --project src/Worker.Host -c Release --no-build -- run "$@"

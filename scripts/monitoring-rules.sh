#!/usr/bin/env bash
# Prints the alert rules of deploy/monitoring/prometheusrule.yaml as a plain Prometheus rule file (its `spec`), for a
# Prometheus without the operator, promtool and scripts/demo.sh --monitoring.
#   scripts/monitoring-rules.sh > rules.yaml && promtool check rules rules.yaml
set -euo pipefail
sed -e '1,/^spec:$/d' -e 's/^  //' "$(dirname "$0")/../deploy/monitoring/prometheusrule.yaml"

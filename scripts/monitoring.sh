#!/usr/bin/env bash
# Checks what monitoring/ ships for the operators' own dashboards: the Prometheus alerting rules
# (promtool check, and promtool's unit tests in cdrchain-rules.test.yml) and the Grafana
# dashboard (valid JSON). The metrics they name are checked against the node's own registry by
# a unit test (node/src/metrics.rs), and the relayer's rules against what `cdrchain relay
# --metrics-file` writes (cli/src/relay_metrics.rs). promtool comes from Debian's `prometheus` package
# (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/../monitoring"
promtool check rules cdrchain-rules.yml cdrchain-relay-rules.yml
promtool test rules cdrchain-rules.test.yml cdrchain-relay-rules.test.yml
python3 -m json.tool grafana-cdrchain.json >/dev/null
echo "monitoring: rules checked and tested, dashboard parses"

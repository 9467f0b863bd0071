#!/usr/bin/env bash
# Runs the benchmarks in a loopback-only network namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
exec unshare --net -- bash -c 'ip link set lo up && python3 bench/run_latency.py "$@"' _ "$@"

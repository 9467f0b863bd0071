#!/usr/bin/env bash
# Runs the test suite inside its own network namespace (loopback only), so no test can send traffic
# anywhere but to loopback and to the namespaces and bridges the tests create.
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check src tests bench
export NANOVISOR_CHECK_COLLECTION=$(( $# == 0 ))
exec unshare --net -- bash -c 'ip link set lo up && exec python3 -m pytest -q -p no:cacheprovider "$@"' _ "$@"

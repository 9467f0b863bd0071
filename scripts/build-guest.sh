#!/usr/bin/env bash
# Builds (or finds cached) the nano guest kernel and initramfs for VM isolation.
set -euo pipefail
cd "$(dirname "$0")/.."
if python3 -c "import nanovisor.runtime.vm.guest" 2>/dev/null; then
  exec python3 -m nanovisor.runtime.vm.guest build
fi
echo "VM guest builder not present; skipping"

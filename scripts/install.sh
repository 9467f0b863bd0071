#!/usr/bin/env bash
# Installs everything nanovisor needs on a fresh Debian 12 machine: system packages through apt, then the
# Python package (editable, with test extras when asked). Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  # OCI runtimes and the per-container monitor
  runc crun conmon
  # nano images: busybox from Debian; --init
  busybox-static tini dpkg
  # image layers compressed with zstd (docker load / OCI archives)
  zstd
  # kernel-side plumbing
  iproute2 nftables util-linux mount procps psmisc e2fsprogs
  # VM isolation
  qemu-system-x86 qemu-utils erofs-utils
  # VM isolation: the spec's seccomp profile compiled host-side for the guest agent (runtime/vm/seccomp_bpf.py)
  libseccomp2
  # the nano guest kernel, built here from Debian's source (python -m nanovisor.runtime.vm.guest build)
  linux-source-6.1 xz-utils bc bison flex perl libelf-dev libssl-dev make gcc libc6-dev cpio
  # tests: a real registry server; docker-compose 1.29.2 (Debian's) drives compose apps against serve
  docker-registry docker-compose
  # benchmarks: bench/net_publish.py
  wrk
  # benchmarks: bench/image_transport.py builds a Debian rootfs
  debootstrap
  python3-venv
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian registry package starts a service on :5000 we do not want; tests start their own.
if systemctl is-active --quiet docker-registry 2>/dev/null; then systemctl disable --now docker-registry || true; fi

# nano images (`nanovisor nano build --package ...`) resolve and unpack offline from a local .deb cache: fill it
# now, while apt can reach its sources (the closure as on an empty system; apt skips what is already there).
# Tests and benchmarks build nano/python, nano/redis, nginx-light and a Debian minbase-like base from it.
NANO_DEBS=${NANO_DEBS:-/var/cache/nanovisor/debs}
NANO_PACKAGES=(python3 redis-server nginx-light ca-certificates busybox-static
  # the Priority: required set (what debootstrap --variant=minbase installs, plus apt)
  apt base-files base-passwd bash bsdutils coreutils dash debconf debianutils diffutils dpkg e2fsprogs findutils
  grep gzip hostname init-system-helpers libc-bin libpam-modules libpam-modules-bin libpam-runtime login mawk
  mount ncurses-base ncurses-bin passwd perl-base sed sysvinit-utils tar tzdata util-linux)
nano_fetch() {
  mkdir -p "$NANO_DEBS/partial" && : > "$NANO_DEBS/.status-empty"
  DEBIAN_FRONTEND=noninteractive apt-get -q -y --download-only --no-install-recommends \
    -o Dir::State::status="$NANO_DEBS/.status-empty" -o Dir::Cache::archives="$NANO_DEBS" \
    -o Debug::NoLocking=1 install "${NANO_PACKAGES[@]}" >/dev/null
}
nano_fetch || { apt-get update -qq && nano_fetch; }

PY=${PYTHON:-python3}
extras=""
[[ "${1:-}" == "--test" ]] && extras="[test]"
"$PY" -m pip install -q -e ".${extras}"
# Byte-compile once: the CLI starts faster, also where PYTHONDONTWRITEBYTECODE is set.
"$PY" -m compileall -q src >/dev/null
# the cache's Packages index (apt reads the cache as a flat repository)
"$PY" -m nanovisor.nano.debcache "$NANO_DEBS"

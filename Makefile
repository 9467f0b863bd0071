# The two commands a fresh Debian 12 machine needs: `make demo` and `make test` (see README.md).
PY ?= python3
NV = $(PY) -m nanovisor

.PHONY: install install-test guest demo test lint bench clean-test

install:
	bash scripts/install.sh

install-test:
	bash scripts/install.sh --test

# The nano guest (kernel + initramfs) for VM isolation: built once, cached by config hash.
guest:
	bash scripts/build-guest.sh

demo: install guest
	$(NV) nano build busybox
	$(NV) run --rm nano/busybox sh -c 'echo "Hello from nanovisor: process isolation (runc), host kernel $$(uname -r)"'
	$(NV) run --rm --isolation=vm nano/busybox sh -c 'echo "Hello from nanovisor: VM isolation, guest kernel $$(uname -r)"'

test: install-test guest
	bash scripts/run-tests.sh

lint:
	ruff check src tests bench

bench:
	bash scripts/run-bench.sh

"""`python -m nanovisor.runtime.vm` == `nanovisor-vm-runtime`."""

import sys

from nanovisor.runtime.vm.cli import main

sys.exit(main())

"""VM isolation: `nanovisor-vm-runtime`, an OCI runtime that runs the bundle inside a QEMU microVM.

The engine treats it exactly like runc (same bundle, same conmon invocation); see cli.py for the commands.
"""

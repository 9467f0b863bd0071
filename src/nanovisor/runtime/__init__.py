"""Runtimes: how a prepared OCI bundle becomes running processes (host kernel or microVM)."""

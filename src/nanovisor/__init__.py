"""nanovisor: one container engine, two isolations (process and microVM), Docker-compatible."""

__version__ = "0.1.0"
API_VERSION = "1.50"
MIN_API_VERSION = "1.24"

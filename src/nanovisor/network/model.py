"""Network records (networks, endpoints, sandboxes, ports): the table access is store/networks.py; this
name is kept for the network package's imports."""

from nanovisor.store.networks import EndpointRec, NetRec, NetStore

__all__ = ["EndpointRec", "NetRec", "NetStore"]

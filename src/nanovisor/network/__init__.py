"""Container networking: bridge networks with IPAM, embedded DNS (netd), published ports (nftables DNAT),
network namespaces. The engine uses NetworkManager only."""

from nanovisor.network.manager import NetworkManager

__all__ = ["NetworkManager"]

"""Container networking: bridge networks with IPAM, embedded DNS (netd), published ports (nftables DNAT),
network namespaces. The engine uses NetworkManager only.

NetworkManager is imported on first use: it pulls in pyroute2 and nftables glue (~25 ms), which commands that
touch no network (and importers of the small rule modules here, like legacy_links) must not pay."""

from __future__ import annotations

__all__ = ["NetworkManager"]


def __getattr__(name: str):
    if name == "NetworkManager":
        from nanovisor.network.manager import NetworkManager

        return NetworkManager
    raise AttributeError(name)

"""Overlayfs snapshotter: a container's rootfs = read-only image layers + its own writable upper dir."""

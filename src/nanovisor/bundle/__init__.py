"""The bundle stage: container + image rootfs + network → OCI bundle (config.json, /etc files, volume copy-up)."""

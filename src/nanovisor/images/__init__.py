"""Image store: content-addressed blobs, manifests/configs, layers unpacked once (safe tar)."""

"""nano images: small base images assembled from Debian packages on the host, no registry needed."""

"""The daemon's image store.

- ``content``: blobs (manifests, configs, compressed layers) addressed by sha256 digest.
- ``layers``: unpacked layers keyed by chain ID, in overlayfs form; built on ``untar``
  (decompression and confined GNU tar), ``tarsafety`` (header validation) and ``whiteouts``
  (OCI whiteouts to overlay whiteouts).
- ``store``: which image is which, tags and digests, over the state store.
"""

"""The Docker Engine API v1.41 (a faithful subset) over a unix socket."""

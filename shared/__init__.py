"""wharf: a Docker-style container engine. This package holds what every program shares."""

__version__ = "0.1.0"

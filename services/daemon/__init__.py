"""wharfd: the host daemon."""

"""Containers: records, lifecycle, and the engine operations over the runtime."""

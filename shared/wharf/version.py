"""The version every wharf program reports (one number for the shared code and all programs)."""

__version__ = "0.1.0"

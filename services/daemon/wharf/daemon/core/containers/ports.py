"""The types of container I/O the Engine hands to its adapters: an attach connection, an exec's
process, a log entry. Adapters name them from here and never import the runtime."""

from wharf.daemon.core.runtime.attach import AttachConnection
from wharf.daemon.core.runtime.exec import ExecProcess
from wharf.daemon.core.runtime.logs import LogEntry

__all__ = ["AttachConnection", "ExecProcess", "LogEntry"]

"""The only module that speaks netlink (pyroute2): netns, bridges and veth endpoints.

Contract:
- Every function is synchronous and blocking; the daemon calls them from a worker thread.
- Nothing here forks. pyroute2's own netns path forks a helper per namespace (~30 ms per
  set-up); instead a short-lived thread ``unshare``s or ``setns``es its own network namespace
  (namespaces are per thread on Linux), opens a netlink socket there and switches back, and
  pyroute2 drives that socket with ``IPRoute(fileno=...)``.
- ``import pyroute2`` costs ~290 ms: it happens once, on first use (:func:`preload` lets the
  daemon pay it at start-up, off any request path).
- Deleting something that is already gone is not an error (teardown is idempotent).
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from wharf.errors import Conflict, Internal, InvalidArgument, NotFound

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MNT_DETACH = 2
NETLINK_ROUTE = 0
IFNAMSIZ = 15  # usable characters of an interface name

_T = TypeVar("_T")
_lock = threading.Lock()
_modules: dict[str, Any] = {}
_libc: ctypes.CDLL | None = None


def preload() -> None:
    """Import pyroute2 now (once) so that the first container does not pay for it."""
    _iproute_class()


def _iproute_class() -> Any:
    with _lock:
        if "IPRoute" not in _modules:
            # Lazily: the import costs ~290 ms, and only the daemon ever needs it. A plain
            # import statement (not importlib) so the layer contracts see who imports pyroute2.
            import pyroute2  # noqa: PLC0415
            from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415

            _modules["IPRoute"] = pyroute2.IPRoute
            _modules["NetlinkError"] = NetlinkError
        return _modules["IPRoute"]


def _netlink_error() -> type[Exception]:
    _iproute_class()
    error: type[Exception] = _modules["NetlinkError"]
    return error


def _c() -> ctypes.CDLL:
    global _libc  # noqa: PLW0603 - one handle on libc for the process
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _in_thread(work: Callable[[], _T]) -> _T:
    """Run ``work`` on a fresh thread (its namespace changes die with it) and return its result."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=run, name="wharf-netns", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: _T = box["value"]
    return value


def _netlink_socket() -> int:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)
    return sock.detach()


def create_netns(path: Path) -> None:
    """Create a network namespace pinned by a bind mount at ``path`` (lo up), without forking."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        raise Conflict(f"network namespace file {path} already exists")

    def work() -> int:
        libc = _c()
        original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _check(libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            try:
                path.touch(mode=0o444, exist_ok=False)
                _check(
                    libc.mount(b"/proc/thread-self/ns/net", os.fsencode(path), None, MS_BIND, None),
                    f"bind-mount netns on {path}",
                )
                return _netlink_socket()
            finally:
                # Back to the daemon's namespace even on failure, before the thread ends.
                _check(libc.setns(original, CLONE_NEWNET), "setns back")
        finally:
            os.close(original)

    try:
        fd = _in_thread(work)
    except BaseException:
        _remove_pin(path)
        raise
    with _iproute(fd) as ipr:
        ipr.link("set", index=1, state="up")  # lo is always index 1 in a fresh netns


def delete_netns(path: Path) -> None:
    """Unmount and unlink a namespace file; the namespace dies with its last user."""
    _remove_pin(path)


def _remove_pin(path: Path) -> None:
    result = _c().umount2(os.fsencode(path), MNT_DETACH)
    if result != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
        code = ctypes.get_errno()
        raise OSError(code, f"umount {path}: {os.strerror(code)}")
    path.unlink(missing_ok=True)


def _socket_in(netns_path: Path) -> int:
    """A netlink socket that lives in the namespace pinned at ``netns_path`` (no fork)."""
    try:
        target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"network namespace {netns_path} does not exist") from None

    def work() -> int:
        libc = _c()
        original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _check(libc.setns(target, CLONE_NEWNET), f"setns into {netns_path}")
            try:
                return _netlink_socket()
            finally:
                _check(libc.setns(original, CLONE_NEWNET), "setns back")
        finally:
            os.close(original)

    try:
        return _in_thread(work)
    finally:
        os.close(target)


@contextmanager
def _iproute(fd: int | None = None) -> Iterator[Any]:
    """pyroute2's IPRoute on ``fd`` (owned from here on), or on a new host socket."""
    cls = _iproute_class()
    ipr = cls(fileno=fd) if fd is not None else cls()
    try:
        yield ipr
    finally:
        ipr.close()


def _index(ipr: Any, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


def _check_name(name: str) -> None:
    if not name or len(name) > IFNAMSIZ or "/" in name or any(c.isspace() for c in name):
        raise InvalidArgument(
            f"invalid interface name {name!r} (1-{IFNAMSIZ} characters, no / or space)"
        )


def host_routes() -> list[tuple[ipaddress.IPv4Network, str]]:
    """The host's IPv4 routes in the main table (default route excluded), with their device."""
    with _iproute() as ipr:
        names = {int(link["index"]): str(link.get_attr("IFLA_IFNAME")) for link in ipr.get_links()}
        out: list[tuple[ipaddress.IPv4Network, str]] = []
        for route in ipr.get_routes(family=socket.AF_INET, table=254):
            dst = route.get_attr("RTA_DST")
            if dst is None:
                continue
            network = ipaddress.IPv4Network(f"{dst}/{route['dst_len']}", strict=False)
            oif = route.get_attr("RTA_OIF")
            out.append((network, names.get(int(oif), "?") if oif is not None else "?"))
        return out


def overlapping_route(
    subnet: ipaddress.IPv4Network,
    routes: list[tuple[ipaddress.IPv4Network, str]],
    own_device: str | None = None,
) -> str | None:
    """The first route (``"10.0.0.0/8 dev eth0"``) that overlaps ``subnet`` on another device."""
    for network, device in routes:
        if device != own_device and network.overlaps(subnet):
            return f"{network} dev {device}"
    return None


def ensure_bridge(name: str, gateway_cidr: str) -> None:
    """Make bridge ``name`` exist and be up with ``gateway_cidr`` (idempotent).

    Raises InvalidArgument when the subnet overlaps a host route on another device, and
    Conflict when the bridge already carries a different IPv4 address.
    """
    _check_name(name)
    iface = ipaddress.IPv4Interface(gateway_cidr)
    clash = overlapping_route(iface.network, host_routes(), own_device=name)
    if clash is not None:
        raise InvalidArgument(
            f"subnet {iface.network} for bridge {name} overlaps the host route {clash}"
        )
    with _iproute() as ipr:
        index = _index(ipr, name)
        if index is None:
            try:
                ipr.link("add", ifname=name, kind="bridge")
            except _netlink_error() as exc:
                if getattr(exc, "code", None) != errno.EEXIST:  # created meanwhile
                    raise
            index = _index(ipr, name)
            if index is None:
                raise Internal(f"bridge {name} vanished right after it was created")
        elif ipr.get_links(index)[0].get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") != "bridge":
            raise Conflict(f"network interface {name} exists and is not a bridge")
        present = [
            ipaddress.IPv4Interface(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
            for a in ipr.get_addr(family=socket.AF_INET, index=index)
        ]
        others = [str(a) for a in present if a != iface]
        if others:
            raise Conflict(f"bridge {name} already has address {', '.join(others)}, not {iface}")
        if iface not in present:
            ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        ipr.link("set", index=index, state="up")
    # Published ports must be reachable via 127.0.0.1: the kernel only routes loopback sources
    # out of an interface that allows it (dockerd does the same without its userland proxy).
    _write_sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")


def _write_sysctl(key: str, value: str) -> None:
    Path("/proc/sys", key).write_text(value)


def delete_bridge(name: str) -> None:
    """Delete bridge ``name`` (a missing bridge is fine)."""
    _delete_link(name)


def link_exists(name: str) -> bool:
    """Whether the host has a network interface called ``name``."""
    with _iproute() as ipr:
        return _index(ipr, name) is not None


def attach_endpoint(
    netns_path: Path,
    bridge: str,
    host_veth: str,
    ip_cidr: str,
    gateway: str | None,
    mac: str,
    ifname: str = "eth0",
    default_route: bool = True,
) -> None:
    """Plug the namespace at ``netns_path`` into ``bridge`` through a new veth pair.

    The peer is created directly inside the namespace as ``ifname`` (no name clash with the
    host's own eth0), gets ``mac`` and ``ip_cidr``, and, when ``default_route`` (the
    container's first network, as in Docker), a default route via ``gateway``.
    """
    _check_name(host_veth)
    _check_name(ifname)
    iface = ipaddress.IPv4Interface(ip_cidr)
    target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _iproute() as ipr:
            master = _index(ipr, bridge)
            if master is None:
                raise NotFound(f"bridge {bridge} does not exist")
            try:
                ipr.link(
                    "add",
                    ifname=host_veth,
                    kind="veth",
                    peer={"ifname": ifname, "address": mac, "net_ns_fd": target},
                )
            except _netlink_error() as exc:
                if getattr(exc, "code", None) == errno.EEXIST:
                    raise Conflict(f"network interface {host_veth} already exists") from None
                raise
            index = _index(ipr, host_veth)
            ipr.link("set", index=index, master=master, state="up")
    finally:
        os.close(target)
    with _iproute(_socket_in(netns_path)) as inner:
        index = _index(inner, ifname)
        if index is None:
            raise Internal(f"{ifname} did not appear in {netns_path}")
        inner.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        inner.link("set", index=index, state="up")
        inner.link("set", index=1, state="up")
        if gateway and default_route:
            inner.route("add", dst="0.0.0.0/0", gateway=gateway)


def detach_endpoint(host_veth: str) -> None:
    """Delete the veth pair whose host end is ``host_veth`` (the peer goes with it)."""
    _delete_link(host_veth)


def _delete_link(name: str) -> None:
    with _iproute() as ipr:
        index = _index(ipr, name)
        if index is None:
            return
        try:
            ipr.link("del", index=index)
        except _netlink_error() as exc:
            if getattr(exc, "code", None) != errno.ENODEV:
                raise


def netns_links(netns_path: Path) -> list[str]:
    """The interface names inside a namespace (for checks and tests)."""
    with _iproute(_socket_in(netns_path)) as inner:
        return [str(link.get_attr("IFLA_IFNAME")) for link in inner.get_links()]

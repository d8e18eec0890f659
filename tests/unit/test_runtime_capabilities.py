"""Capabilities: Docker's --cap-add/--cap-drop semantics clipped to the daemon's bounding set."""

from __future__ import annotations

from pathlib import Path

import pytest

from wharf.daemon.core.runtime.capabilities import (
    CAPABILITIES,
    DOCKER_DEFAULT_CAPS,
    bounding_set,
    container_capabilities,
    from_mask,
    normalize,
    to_mask,
)
from wharf.errors import InvalidArgument

NO_SYS_RESOURCE = frozenset(from_mask(0x1FFFEFFFFFF))


def test_defaults_and_mask() -> None:
    caps = container_capabilities(bounding=NO_SYS_RESOURCE)
    assert caps == list(DOCKER_DEFAULT_CAPS) and len(caps) == 14
    assert to_mask(caps) == 0xA80425FB  # CapEff of a default Docker container
    assert "CAP_SYS_RESOURCE" not in NO_SYS_RESOURCE and len(NO_SYS_RESOURCE) == 40


def test_normalize_prefix_case_and_unknown() -> None:
    assert normalize(["net_admin", "CAP_SYS_TIME", "Net_Admin", "all"]) == [
        "CAP_NET_ADMIN", "CAP_SYS_TIME", "ALL"]
    with pytest.raises(InvalidArgument, match="unknown capability: 'FLY'"):
        normalize(["FLY"])


def test_add_drop() -> None:
    caps = container_capabilities(["SYS_ADMIN"], ["chown", "cap_kill"], bounding=NO_SYS_RESOURCE)
    assert "CAP_CHOWN" not in caps and "CAP_KILL" not in caps and caps[-1] == "CAP_SYS_ADMIN"
    assert container_capabilities(["NET_RAW"], ["ALL"], bounding=NO_SYS_RESOURCE) == ["CAP_NET_RAW"]
    every = container_capabilities(["ALL"], ["MKNOD"], bounding=NO_SYS_RESOURCE)
    assert "CAP_MKNOD" not in every and "CAP_SYS_RESOURCE" not in every and len(every) == 39


def test_privileged_is_the_bounding_set() -> None:
    caps = container_capabilities(privileged=True, bounding=NO_SYS_RESOURCE)
    assert set(caps) == NO_SYS_RESOURCE
    assert caps == [c for c in CAPABILITIES if c in NO_SYS_RESOURCE]


def test_add_of_a_cap_the_daemon_lacks_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="CAP_SYS_RESOURCE is not in the daemon"):
        container_capabilities(["sys_resource"], bounding=NO_SYS_RESOURCE)


def test_bounding_set_from_status(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapBnd:\t000001fffeffffff\n")
    assert bounding_set(status) == NO_SYS_RESOURCE

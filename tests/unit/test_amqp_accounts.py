"""infra/amqp-accounts.sh grants each node exactly ``wharf.topology.node_rights`` (the rights
the gateway's checks and the broker identity tests assume), run against a recording fake
``rabbitmqctl``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.layout import ROOT
from wharf.topology import node_rights, node_user

FAKE = """#!/bin/sh
printf '%s\\n' "$*" >> "$RECORD"
"""


def _run(tmp_path: Path, script: str) -> list[str]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    fake = bindir / "rabbitmqctl"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    record = tmp_path / "calls"
    record.unlink(missing_ok=True)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "RECORD": str(record)}
    out = subprocess.run(["bash", "-c", f"set -e; source {ROOT}/infra/amqp-accounts.sh; {script}"],
                         env=env, capture_output=True, text=True, check=False, timeout=30)
    assert out.returncode == 0, out.stderr
    return record.read_text().splitlines() if record.exists() else []


@pytest.mark.parametrize("node", ["node1", "web.a-1_b"])
def test_a_nodes_account_gets_exactly_its_rights(tmp_path: Path, node: str) -> None:
    calls = _run(tmp_path, f"amqp_node_account wharf {node} s3cret")
    rights = node_rights(node)
    user = node_user(node)
    assert f"-q add_user {user} s3cret" in calls
    assert (f"-q set_permissions -p wharf {user} {rights['configure']} {rights['write']} "
            f"{rights['read']}") in calls
    assert (f"-q set_topic_permissions -p wharf {user} wharf.events {rights['topic_write']} "
            f"{rights['topic_read']}") in calls


def test_an_invalid_node_name_makes_no_account(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    out = subprocess.run(
        ["bash", "-c", f"source {ROOT}/infra/amqp-accounts.sh; amqp_node_account wharf "
         "'a b.*' pw"], env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"},
        capture_output=True, text=True, check=False, timeout=30)
    assert out.returncode != 0 and "invalid node name" in out.stderr


def test_the_gateway_may_configure_only_wharf_names(tmp_path: Path) -> None:
    calls = _run(tmp_path, "amqp_gateway_account wharf pw")
    assert r"-q set_permissions -p wharf wharf-gateway ^wharf\. ^wharf\. ^wharf\." in calls

"""The mover's state machine (wharf.gateway.moves) against two fake nodes: a move carries the
container, a step that fails rolls it back, a move resumed from its journal finishes, and
what cannot move is refused before anything changes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from wharf.errors import Conflict, InvalidArgument, NotFound, Unavailable
from wharf.gateway import moves
from wharf.gateway.moves import MoveLog, Mover, plan_create, unmovable
from wharf.gateway.store import ClusterStore

RUNNING = {"Id": "c" * 64, "Name": "/web", "State": {"Running": True},
           "Config": {"Image": "busybox", "Cmd": ["sleep", "9"], "Labels": {"a": "b"},
                      "Hostname": "cccccccccccc"},
           "HostConfig": {"NetworkMode": "bridge"},
           "Mounts": [{"Type": "volume", "Name": "data", "Destination": "/data"}],
           "NetworkSettings": {"Networks": {"bridge": {}}}}


@dataclass
class FakeNodes:
    """Two nodes' containers, volumes and images, and every call made, in order."""

    containers: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {
        "n1": {"web": json.loads(json.dumps(RUNNING))}, "n2": {}})
    volumes: dict[str, set[str]] = field(default_factory=lambda: {"n1": {"data"}, "n2": set()})
    calls: list[str] = field(default_factory=list)
    fail: dict[str, Exception] = field(default_factory=dict)

    def _find(self, node: str, ref: str) -> tuple[str, dict[str, Any]]:
        for name, c in self.containers[node].items():
            if ref in (name, c["Id"]):
                return name, c
        raise NotFound(f"{node}: no such container: {ref}")

    async def call(self, node: str, method: str, path: str,
                   query: dict[str, str] | None = None, body: Any = None,
                   ok: tuple[int, ...] = ()) -> Any:
        what = f"{node} {method} {path}"
        self.calls.append(what)
        for key, error in self.fail.items():
            if what.startswith(key):
                raise error
        parts = path.strip("/").split("/")
        if parts[0] == "containers" and parts[1] == "create":
            if body["Image"] and query and query["name"] in self.containers[node]:
                raise Conflict("name in use")
            made = {"Id": "d" * 64, "Name": "/" + query["name"], "State": {"Running": False},
                    "Config": {k: v for k, v in body.items() if k != "HostConfig"}}
            self.containers[node][query["name"]] = made
            return {"Id": made["Id"]}
        if parts[0] == "containers":
            name, found = self._find(node, parts[1])
            if method == "DELETE":
                del self.containers[node][name]
            elif parts[-1] in ("start", "stop"):
                found["State"]["Running"] = parts[-1] == "start"
            return found
        if parts[0] == "volumes":
            if method == "POST":
                self.volumes[node].add(body["Name"])
                return {}
            if parts[1] not in self.volumes[node]:
                raise NotFound("no such volume")
            if method == "DELETE":
                self.volumes[node].discard(parts[1])
            return {"Name": parts[1], "Options": {}}
        return {}

    async def copy(self, source: str, source_path: str, target: str, target_path: str,
                   query: dict[str, str] | None = None) -> bytes:
        self.calls.append(f"copy {source}{source_path} -> {target}{target_path}")
        return b'{"stream":"Loaded image"}'


def _mover(tmp_path: Path, nodes: FakeNodes) -> tuple[Mover, MoveLog]:
    log = MoveLog(ClusterStore(tmp_path / "gw.db"))
    return Mover(log, nodes, lambda source: "n2"), log  # type: ignore[arg-type]


def _move(mover: Mover, container: str = "web") -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        begun = await mover.start(container, "n1", "any", "alice", lambda body: None)
        ended = await mover.wait(begun["Id"], 10)
        assert ended is not None
        return ended
    return asyncio.run(go())


def test_a_move_carries_the_container_and_removes_the_source(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    nodes = FakeNodes()
    mover, log = _mover(tmp_path, nodes)
    ended = _move(mover)
    assert (ended["State"], ended["Copy"], ended["Target"]) == ("done", "target", "n2")
    assert nodes.containers["n1"] == {} and nodes.volumes["n1"] == set()
    moved = nodes.containers["n2"]["web"]
    assert moved["State"]["Running"] is True
    assert moved["Config"]["Image"] == f"wharf-move/{ended['Id']}:latest"
    assert moved["Config"]["Labels"] == {"a": "b"} and "Hostname" not in moved["Config"]
    assert nodes.volumes["n2"] == {"data"}
    assert [h["State"] for h in ended["History"]] == [
        "stop", "commit", "transfer", "volumes", "create", "start", "cleanup", "done"]
    start = nodes.calls.index(f"n2 POST /containers/{'d' * 64}/start")
    assert start < nodes.calls.index(f"n1 DELETE /containers/{'c' * 64}")  # target first
    assert log.move(ended["Id"]) == ended


@pytest.mark.parametrize("still_used", [False, True])
def test_a_container_that_moved_before_leaves_with_its_earlier_image(tmp_path: Path,
                                                                     still_used: bool) -> None:
    nodes = FakeNodes()
    nodes.containers["n1"]["web"]["Config"]["Image"] = "wharf-move/earlier:latest"
    if still_used:  # another container on n1 runs from it: the node refuses, the move goes on
        nodes.fail["n1 DELETE /images/wharf-move/earlier"] = Conflict("image is being used")
    mover, _ = _mover(tmp_path, nodes)
    ended = _move(mover)
    assert ended["State"] == "done"
    assert nodes.calls[-2:] == [f"n1 DELETE /images/wharf-move/{ended['Id']}:latest",
                                "n1 DELETE /images/wharf-move/earlier:latest"]


def test_a_failed_create_rolls_back_and_the_source_runs_again(tmp_path: Path) -> None:
    nodes = FakeNodes(fail={"n2 POST /containers/create": InvalidArgument("port in use")})
    mover, _ = _mover(tmp_path, nodes)
    ended = _move(mover)
    assert (ended["State"], ended["Copy"]) == ("rolled-back", "source")
    assert "port in use" in ended["Error"]
    assert nodes.containers["n1"]["web"]["State"]["Running"] is True
    assert nodes.containers["n2"] == {} and nodes.volumes["n2"] == set()  # made, then gone


def test_a_move_resumed_from_its_journal_finishes(tmp_path: Path) -> None:
    nodes = FakeNodes()
    mover, log = _mover(tmp_path, nodes)
    journal = moves.new_move("web", "n1", "n2", "alice")
    journal.update(SourceID="c" * 64, Name="web", State="transfer", WasRunning=True,
                   Create=plan_create(RUNNING, f"wharf-move/{journal['Id']}:latest"),
                   Volumes=RUNNING["Mounts"])
    nodes.containers["n1"]["web"]["State"]["Running"] = False  # stopped before the crash
    log.save_move(journal)

    async def go() -> dict[str, Any] | None:
        mover.resume()
        return await mover.wait(journal["Id"], 10)
    ended = asyncio.run(go())
    assert ended is not None and ended["State"] == "done"
    assert not any(c.endswith("/stop") or c.startswith("n1 POST /commit")
                   for c in nodes.calls)  # steps before "transfer" are not made again
    assert list(nodes.containers["n2"]) == ["web"] and nodes.containers["n1"] == {}


def test_an_unreachable_node_holds_the_move(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = FakeNodes(fail={"n2 POST /volumes/create": Unavailable("node n2 is down")})
    monkeypatch.setattr(moves, "RETRY_SECONDS", 0.01)
    monkeypatch.setattr(moves, "GIVE_UP_SECONDS", 0.2)
    mover, _ = _mover(tmp_path, nodes)
    ended = _move(mover)  # held, retried, then rolled back once it waited too long
    assert ended["State"] == "rolled-back" and "down" in ended["Error"]
    assert sum(c.startswith("n2 POST /volumes/create") for c in nodes.calls) > 2
    assert nodes.containers["n1"]["web"]["State"]["Running"] is True


def test_what_cannot_move_is_named() -> None:
    assert unmovable(RUNNING) is None
    bound = {**RUNNING, "Mounts": [{"Type": "bind", "Source": "/srv", "Destination": "/d"}]}
    assert "host path /srv" in (unmovable(bound) or "")
    shared = {**RUNNING, "HostConfig": {"NetworkMode": "container:db"}}
    assert "namespace" in (unmovable(shared) or "")


def test_a_refused_move_changes_nothing(tmp_path: Path) -> None:
    nodes = FakeNodes()
    nodes.containers["n1"]["web"]["Mounts"] = [{"Type": "bind", "Source": "/srv",
                                               "Destination": "/d"}]
    mover, log = _mover(tmp_path, nodes)
    with pytest.raises(InvalidArgument, match="host path"):
        _move(mover)
    assert log.moves() == [] and nodes.calls == ["n1 GET /containers/web/json"]

"""Moving a container to another node: a cold migration, journalled and resumable.

A move carries the container's name, config, labels, writable layer and named volumes' data
from its node to another, and its running state (it ran: it runs there). It is a sequence of
steps on the two nodes' daemons, reached as the gateway reaches them for streams
(:mod:`wharf.gateway.relay`: their Docker API over the cluster's mutual TLS):

1. ``inspect`` the container; refuse what cannot move (host paths, another container's
   namespaces) before anything changes;
2. ``stop`` it (a consistent layer and volumes), remembering whether it ran;
3. ``commit`` its writable layer as the image ``wharf-move/<move id>``; ``save`` it on the
   source and ``load`` it on the target, streamed through the gateway (the target already
   has, or is sent, the layers below);
4. create its named volumes on the target and copy their data (``volumes/{name}/export`` →
   ``import``), and the user-defined networks it is on;
5. ``create`` it on the target with its name and config (the image: the moved one), ``start``
   it there if it ran;
6. only then remove it from the source, with its volumes and the move's image.

Every step is written to the ``moves`` table before the next begins, and each is idempotent, so
a gateway that restarts (or loses a node or the broker) resumes each unfinished move from its
step. A step before 6 that fails for good rolls the move back instead: what was made on the
target goes, the source runs again if it ran. So the container exists once: on the source
until the target runs it, on the target after; ``Copy`` in the move's document says where.
A node that cannot be reached holds its move (retried) rather than deciding without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from wharf.errors import (
    Conflict,
    InvalidArgument,
    NotFound,
    Unavailable,
    WharfError,
)
from wharf.gateway.relay import NodeAPI, NodeLinks

log = logging.getLogger("wharf.gateway.moves")
MOVE_REPO = "wharf-move"
RETRY_SECONDS = 2.0
GIVE_UP_SECONDS = 120.0  # a node unreachable this long before the target runs: roll back

FORWARD = ("inspect", "stop", "commit", "transfer", "volumes", "create", "start", "cleanup")
DONE, ROLLED_BACK, FAILED = "done", "rolled-back", "failed"
ROLLING_BACK = "rolling-back"
TERMINAL = (DONE, ROLLED_BACK, FAILED)
_DEFAULT_NETWORKS = ("bridge", "host", "none", "default", "")


def build(store: Any, dispatcher: Any, links: NodeLinks) -> Mover:
    """The gateway's mover: its journal in ``store``, nodes reached by ``links`` at the
    addresses the dispatcher knows, ``any`` placed by the dispatcher away from the source."""
    from wharf.gateway.placement import parse_constraint  # noqa: PLC0415

    def place(source: str) -> str:
        return str(dispatcher.choose([parse_constraint(f"node.name!={source}")]))

    return Mover(MoveLog(store), NodeAPI(dispatcher.stream_address, links), place)


def new_move(container: str, source: str, target: str, principal: str) -> dict[str, Any]:
    now = time.time()
    return {"Id": uuid.uuid4().hex[:16], "Container": container, "Source": source,
            "Target": target, "State": "inspect", "Copy": "source", "Principal": principal,
            "WasRunning": None, "Name": None, "SourceID": None, "TargetID": None,
            "Volumes": [], "Networks": [], "Error": None, "CreatedAt": now, "UpdatedAt": now}


def plan_create(inspected: dict[str, Any], image: str) -> dict[str, Any]:
    """The create body that makes the container again from ``docker inspect``'s document."""
    config = dict(inspected.get("Config") or {})
    config["Image"] = image
    config.pop("Hostname", None)  # the target's default, as a new container there gets
    host = dict(inspected.get("HostConfig") or {})
    networks = (inspected.get("NetworkSettings") or {}).get("Networks") or {}
    endpoints = {name: {"Aliases": [a for a in (net.get("Aliases") or [])
                                    if not str(inspected.get("Id", "")).startswith(a)]}
                 for name, net in networks.items() if name not in _DEFAULT_NETWORKS}
    body = {**config, "HostConfig": host}
    if endpoints:
        body["NetworkingConfig"] = {"EndpointsConfig": endpoints}
    return body


def unmovable(inspected: dict[str, Any]) -> str | None:
    """Why the container cannot move, or None: what only its node has."""
    for mount in inspected.get("Mounts") or []:
        if mount.get("Type") == "bind":
            return (f"it mounts the host path {mount.get('Source')} at "
                    f"{mount.get('Destination')}: the target has its own host")
    host = inspected.get("HostConfig") or {}
    for key in ("NetworkMode", "PidMode", "IpcMode"):
        if str(host.get(key) or "").startswith("container:"):
            return f"it shares another container's namespace ({key} {host[key]})"
    if host.get("VolumesFrom"):
        return "it takes another container's volumes (--volumes-from)"
    return None


class MoveLog:
    """The ``moves`` table of the gateway's store: one row a move, its document as JSON."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def save_move(self, move: dict[str, Any]) -> None:
        with self.store.transaction() as db:
            db.execute("INSERT OR REPLACE INTO moves (id, container, source, state, data,"
                       " created_at, updated_at) VALUES (?,?,?,?,?,?,?)",
                       (move["Id"], move.get("SourceID") or move["Container"], move["Source"],
                        move["State"], json.dumps(move), move["CreatedAt"], move["UpdatedAt"]))

    def move(self, move_id: str) -> dict[str, Any] | None:
        rows = self._select("WHERE id=?", (move_id,))
        return rows[0] if rows else None

    def moves(self) -> list[dict[str, Any]]:
        return self._select("ORDER BY created_at", ())

    def unfinished_moves(self) -> list[dict[str, Any]]:
        return self._select(f"WHERE state NOT IN ({','.join('?' * len(TERMINAL))})"
                            " ORDER BY created_at", TERMINAL)

    def active_move(self, source: str, container_id: str) -> dict[str, Any] | None:
        rows = [m for m in self.unfinished_moves()
                if m["Source"] == source and m.get("SourceID") == container_id]
        return rows[0] if rows else None

    def _select(self, where: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self.store.transaction() as db:
            found: list[sqlite3.Row] = db.execute(f"SELECT data FROM moves {where}",  # noqa: S608
                                                  params).fetchall()
        return [json.loads(row["data"]) for row in found]


class Mover:
    """Runs moves: one task each, resumed at start-up for every unfinished one."""

    def __init__(self, store: MoveLog, api: NodeAPI, place: Callable[[str], str]) -> None:
        self.store, self.api, self.place = store, api, place
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._finished: dict[str, asyncio.Event] = {}

    def resume(self) -> None:
        for move in self.store.unfinished_moves():
            log.info("resuming move %s of %s (%s → %s) at %s", move["Id"], move["Container"],
                     move["Source"], move["Target"], move["State"])
            self._run(move)

    async def start(self, container: str, source: str, target: str, principal: str,
                    check: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Begin a move (``target`` a node or ``any``); ``check`` vets the create body it will
        send (the caller's policy). Refusals come before anything changes."""
        inspected = await self.api.call(source, "GET", f"/containers/{quote(container)}/json")
        reason = unmovable(inspected)
        if reason:
            raise InvalidArgument(f"cannot move {container}: {reason}")
        check(plan_create(inspected, "x"))
        target = self.place(source) if target == "any" else target
        if target == source:
            raise InvalidArgument(f"{container} is already on {source}")
        name = str(inspected.get("Name", "")).lstrip("/")
        if self.store.active_move(source, inspected["Id"]) is not None:
            raise Conflict(f"{name} is already being moved")
        move = new_move(name, source, target, principal)
        move.update(SourceID=inspected["Id"], Name=name)
        self.store.save_move(move)
        self._run(move)
        return move

    async def wait(self, move_id: str, timeout: float) -> dict[str, Any] | None:
        event = self._finished.get(move_id)
        if event is not None:
            await asyncio.wait_for(event.wait(), timeout)
        result: dict[str, Any] | None = self.store.move(move_id)
        return result

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):  # shutting down
                await task

    def _run(self, move: dict[str, Any]) -> None:
        self._finished.setdefault(move["Id"], asyncio.Event())
        self._tasks[move["Id"]] = asyncio.get_running_loop().create_task(self._drive(move))

    async def _drive(self, move: dict[str, Any]) -> None:
        try:
            while move["State"] not in TERMINAL:
                await self._step(move)
        finally:
            self._tasks.pop(move["Id"], None)
            self._finished[move["Id"]].set()

    async def _step(self, move: dict[str, Any]) -> None:
        state = move["State"]
        try:
            if state == ROLLING_BACK:
                await self._roll_back(move)
                self._set(move, ROLLED_BACK, Copy="source")
                return
            await getattr(self, f"_{state}")(move)
            following = FORWARD[FORWARD.index(state) + 1] if state != "cleanup" else DONE
            self._set(move, following, Error=None)
        except Unavailable as exc:  # a node (or the link to it) is away: hold, then decide
            waited = time.time() - move.get("StuckSince", time.time())
            move.setdefault("StuckSince", time.time())
            if state not in ("cleanup", ROLLING_BACK) and waited > GIVE_UP_SECONDS:
                self._set(move, ROLLING_BACK, Error=f"{state}: {exc}")
            else:
                self._set(move, state, Error=f"{state}: {exc} (retrying)")
                await asyncio.sleep(RETRY_SECONDS)
        except WharfError as exc:
            log.warning("move %s of %s failed at %s: %s", move["Id"], move["Container"], state,
                        exc)
            if state == "cleanup":  # the target runs it: finish, never go back
                self._set(move, state, Error=f"{state}: {exc} (retrying)")
                await asyncio.sleep(RETRY_SECONDS)
            elif state == ROLLING_BACK:
                self._set(move, FAILED, Error=f"rolling back: {exc}")
            else:
                self._set(move, ROLLING_BACK, Error=f"{state}: {exc}")

    def _set(self, move: dict[str, Any], state: str, **fields: Any) -> None:
        if state != move["State"] or ("Error" in fields and fields["Error"] is None):
            move.pop("StuckSince", None)
        now = time.time()
        if state != move["State"]:  # when each step began: where a move's time goes
            move.setdefault("History", []).append({"State": state, "At": now})
        move.update(State=state, UpdatedAt=now, **fields)
        self.store.save_move(move)

    # --- the steps, each safe to run again ---------------------------------------------------

    async def _inspect(self, move: dict[str, Any]) -> None:
        inspected = await self.api.call(move["Source"], "GET",
                                        f"/containers/{move['SourceID']}/json")
        move["Create"] = plan_create(inspected, f"{MOVE_REPO}/{move['Id']}:latest")
        move["Volumes"] = [m for m in (inspected.get("Mounts") or [])
                           if m.get("Type") == "volume"]
        move["Networks"] = [n for n in ((inspected.get("NetworkSettings") or {})
                                        .get("Networks") or {}) if n not in _DEFAULT_NETWORKS]
        if move["WasRunning"] is None:
            move["WasRunning"] = bool((inspected.get("State") or {}).get("Running"))
        image = (inspected.get("Config") or {}).get("Image") or ""
        # a container that moved before runs from that move's image: it leaves with it
        move["EarlierImage"] = image if image.startswith(f"{MOVE_REPO}/") else None

    async def _stop(self, move: dict[str, Any]) -> None:
        await self.api.call(move["Source"], "POST", f"/containers/{move['SourceID']}/stop")

    async def _commit(self, move: dict[str, Any]) -> None:
        await self.api.call(move["Source"], "POST", "/commit", {
            "container": move["SourceID"], "repo": f"{MOVE_REPO}/{move['Id']}", "tag": "latest",
            "pause": "0", "comment": f"wharf container move {move['Id']}"})

    async def _transfer(self, move: dict[str, Any]) -> None:
        answer = await self.api.copy(move["Source"], f"/images/{MOVE_REPO}/{move['Id']}:latest"
                                     "/get", move["Target"], "/images/load", {"quiet": "1"})
        if b"errorDetail" in answer:
            raise InvalidArgument(f"loading the image on {move['Target']}: "
                                  f"{answer.decode(errors='replace')[:300]}")

    async def _volumes(self, move: dict[str, Any]) -> None:
        for name in move["Networks"]:
            await self._network(move, name)
        made = move.setdefault("MadeVolumes", [])
        for mount in move["Volumes"]:
            name = mount["Name"]
            volume = await self.api.call(move["Source"], "GET", f"/volumes/{quote(name)}")
            if name not in made:
                existing = await self._exists(move["Target"], f"/volumes/{quote(name)}")
                if existing:
                    raise Conflict(f"a volume {name} already exists on {move['Target']}")
                await self.api.call(move["Target"], "POST", "/volumes/create", body={
                    "Name": name, "Driver": volume.get("Driver") or "local",
                    "DriverOpts": volume.get("Options") or {},
                    "Labels": volume.get("Labels") or {}})
                made.append(name)
                self.store.save_move(move)
            if not volume.get("Options"):  # data on another host (type=nfs…) is not copied
                await self.api.copy(move["Source"], f"/volumes/{quote(name)}/export",
                                    move["Target"], f"/volumes/{quote(name)}/import")

    async def _network(self, move: dict[str, Any], name: str) -> None:
        if await self._exists(move["Target"], f"/networks/{quote(name)}"):
            return
        network = await self.api.call(move["Source"], "GET", f"/networks/{quote(name)}")
        await self.api.call(move["Target"], "POST", "/networks/create", body={
            "Name": name, "Driver": network.get("Driver") or "bridge",
            "Options": network.get("Options") or {}, "Labels": network.get("Labels") or {},
            "Internal": bool(network.get("Internal")), "IPAM": network.get("IPAM") or {}})
        move.setdefault("MadeNetworks", []).append(name)

    async def _create(self, move: dict[str, Any]) -> None:
        try:
            made = await self.api.call(move["Target"], "POST", "/containers/create",
                                       {"name": move["Name"]}, body=move["Create"])
            move["TargetID"] = made["Id"]
        except Conflict:  # made before a restart? ours when it runs the move's image
            found = await self.api.call(move["Target"], "GET",
                                        f"/containers/{quote(move['Name'])}/json")
            if (found.get("Config") or {}).get("Image") != move["Create"]["Image"]:
                raise
            move["TargetID"] = found["Id"]

    async def _start(self, move: dict[str, Any]) -> None:
        if move["WasRunning"]:
            await self.api.call(move["Target"], "POST", f"/containers/{move['TargetID']}/start")
        move["Copy"] = "target"

    async def _cleanup(self, move: dict[str, Any]) -> None:
        await self._gone(move["Source"], f"/containers/{move['SourceID']}", {"force": "1"})
        for mount in move["Volumes"]:
            await self._gone(move["Source"], f"/volumes/{quote(mount['Name'])}")
        await self._gone(move["Source"], f"/images/{MOVE_REPO}/{move['Id']}:latest")
        if move.get("EarlierImage"):
            with contextlib.suppress(Conflict):  # another container on the source uses it
                await self._gone(move["Source"], f"/images/{move['EarlierImage']}")

    async def _roll_back(self, move: dict[str, Any]) -> None:
        target = move["Target"]
        if move.get("TargetID"):
            await self._gone(target, f"/containers/{move['TargetID']}", {"force": "1"})
        for name in move.get("MadeVolumes", []):
            await self._gone(target, f"/volumes/{quote(name)}")
        for name in move.get("MadeNetworks", []):
            await self._gone(target, f"/networks/{quote(name)}")
        await self._gone(target, f"/images/{MOVE_REPO}/{move['Id']}:latest")
        await self._gone(move["Source"], f"/images/{MOVE_REPO}/{move['Id']}:latest")
        if move.get("WasRunning"):
            await self.api.call(move["Source"], "POST", f"/containers/{move['SourceID']}/start")

    async def _gone(self, node: str, path: str, query: dict[str, str] | None = None) -> None:
        with contextlib.suppress(NotFound):
            await self.api.call(node, "DELETE", path, query)

    async def _exists(self, node: str, path: str) -> bool:
        try:
            await self.api.call(node, "GET", path)
        except NotFound:
            return False
        return True


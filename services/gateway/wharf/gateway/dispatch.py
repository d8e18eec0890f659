"""Commands from HTTP requests to nodes, and their results back to the requests that wait.

A command is recorded (with its idempotency key) before it is published; a node that is down or
unknown is refused at once (503 / 404) instead of letting the request wait for the deadline.
An idempotency key is its principal's: the same key from another principal is another command,
and the same key from the same principal for a different request is refused (422, as the IETF
draft "The Idempotency-Key HTTP Header Field" says) rather than answered with the first one.
Whether a node is up is answered from memory (the bus reports each heartbeat), not from SQLite,
and so is its availability (stored, and changed only by :meth:`Dispatcher.set_availability`):
a create or run sent by name to a drained node is refused (409), any other command reaches it,
and placement passes over a paused or drained node.
A command someone waits for is held in memory with an :class:`asyncio.Event`: the bus hands each
result to :meth:`Dispatcher.on_result` on the loop, which fills it in and wakes the waiters, so
the request answers without reading the store again. Everything here runs on the event loop.

Commands and results are kept in the :class:`~wharf.gateway.records.Records` given: the
gateway's own SQLite file, or PostgreSQL shared by several gateways. Shared, node availability
is read back from the shared records every second, and a command asked for again with its
Idempotency-Key while still without an answer is published again with this gateway as its
``reply_to``: the gateway that took it may have died before it went out, or before its result
came back, and the node's journal runs a command id once (a second copy is answered with the
recorded result, to the gateway that sent that copy). So each result goes to one gateway only,
the one whose request waits for it. A command whose publish went without a confirm (the
connection lost, :class:`~wharf.errors.MaybeSent`) may be queued: its record and key stand and
asking again sends the same id, never a second command.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from wharf.errors import (
    Conflict,
    MaybeSent,
    NotFound,
    Unavailable,
    Unprocessable,
    WharfError,
)
from wharf.gateway.placement import Availability, Candidate, Constraint, place
from wharf.gateway.records import Records, outcome
from wharf.gateway.store import ClusterStore, CommandRow, NodeRow
from wharf.protocol import BROADCAST_NODE, MUTATING, CommandEnvelope, Payload


class KeyReused(Unprocessable):
    """An Idempotency-Key used again by its principal for a different request: the request is
    unprocessable as sent (422, ``unprocessable``), not invalid."""


# Query parameters that say how to answer, not what to do: a retry may change them.
_DELIVERY = frozenset({"wait", "deadline"})
# Commands that make a new container: what a drained node refuses.
NEW_CONTAINERS = frozenset({"create", "run"})
_T = TypeVar("_T")
MAYBE_SENT_KEPT = 10_000  # commands whose publish went unconfirmed, kept to be sent again
# What /metrics is told of each command (wharf.gateway.metrics): its type, its outcome (a
# status of GET /v1/commands, "refused" or "accepted") and the seconds to that outcome (None:
# refused before it was sent, or sent without anyone waiting).
Observer = Callable[[str, str, float | None], None]


def fingerprint(method: str, path: str, query: list[tuple[str, str]], body: bytes) -> str:
    """The request an Idempotency-Key is bound to: method, path (the node in it), the query
    but :data:`_DELIVERY`, and the body as sent."""
    digest = hashlib.sha256(json.dumps(
        [method, path, sorted((k, v) for k, v in query if k not in _DELIVERY)]).encode())
    digest.update(b"\0" + body)
    return digest.hexdigest()


def same_request(row: CommandRow, request_hash: str | None) -> CommandRow:
    """``row`` (found by its key), unless it was made by a different request."""
    if request_hash is not None and row.request_hash is not None and \
            row.request_hash != request_hash:
        raise KeyReused(f"Idempotency-Key {row.idempotency_key!r} was used for a different "
                        f"request (command {row.id}, {row.type} on {row.node}): send a new "
                        "key with a new request")
    return row


class Publisher(Protocol):
    async def publish(self, envelope: CommandEnvelope) -> None: ...


@dataclass
class _Watched:
    """A command someone waits for: its row (results filled in as they come) and its waiters."""

    row: CommandRow
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    waiters: int = 0
    unstored: bool = False  # a read: only here, never in the store
    report: bool = False  # its outcome goes to Dispatcher.observe (the request that sent it)


class Dispatcher:
    def __init__(self, store: ClusterStore, publisher: Publisher, *, gateway_id: str,
                 down_after: float, clock: Callable[[], float] = time.time,
                 records: Records | None = None) -> None:
        self.store, self.publisher, self.gateway_id = store, publisher, gateway_id
        self.records: Records = records if records is not None else store
        self.down_after, self.clock = down_after, clock
        self.started = clock()
        self._watched: dict[str, _Watched] = {}
        self._maybe_sent: dict[str, None] = {}  # ids without a confirm: re-asked, sent again
        known = store.nodes()
        self._last_seen = {n.name: n.last_seen for n in known}
        self._availability = {n.name: n.availability for n in known}  # a new node: active
        self.observe: Observer = lambda _type, _outcome, _seconds: None

    # --- the cluster view -----------------------------------------------------------------

    def seen(self, node: str, at: float) -> None:
        """The bus heard from ``node`` (a heartbeat) at ``at``."""
        self._last_seen[node] = at

    def last_seen(self, node: NodeRow) -> float:
        return max(node.last_seen, self._last_seen.get(node.name, 0.0))

    def node_ready(self, node: NodeRow) -> bool:
        return self.clock() - self.last_seen(node) <= self.down_after

    def require_ready(self, name: str) -> str:
        last = self._last_seen.get(name)
        if last is None:
            node = self.store.node(name)  # known from a snapshot only, or not at all
            if node is None:
                raise NotFound(f"no such node: {name}")
            last = self._last_seen[name] = node.last_seen
        ago = self.clock() - last
        if ago > self.down_after:
            raise Unavailable(f"node {name} is down (last heartbeat {ago:.1f}s ago)")
        return name

    def stream_address(self, name: str) -> str:
        """Where a ready node takes relayed streams (its heartbeat's address, maybe "");
        NotFound and Unavailable as :meth:`require_ready`."""
        self.require_ready(name)
        node = self.store.node(name)
        return node.address if node is not None else ""

    def candidates(self) -> list[Candidate]:
        counts = self.store.container_counts()
        return [Candidate(name=n.name, ready=self.node_ready(n),
                          running=counts.get(n.name, (0, 0))[1],
                          memory_available=int(n.load.get("memory_available", 0)),
                          labels=n.labels, availability=n.availability)
                for n in self.store.nodes()]

    def choose(self, constraints: list[Constraint]) -> str:
        return place(self.candidates(), constraints)

    def set_availability(self, name: str, availability: Availability) -> NodeRow:
        """Set a node's availability (stored, so it outlives this gateway, and in shared
        records first, so every gateway obeys it; a change is a node ``update`` event);
        NotFound for a node this gateway never heard of."""
        if self.store.node(name) is None:
            raise NotFound(f"no such node: {name}")
        now = self.clock()
        self.records.save_availability(name, availability, now)
        row = self.store.set_availability(name, availability, now)
        if row is None:
            raise NotFound(f"no such node: {name}")
        self._availability[name] = availability
        return row

    def sync_availability(self) -> None:
        """Adopt the availability an operator set on another gateway (shared records; the
        sweeper calls it every second). A node this gateway has not heard of yet gets it at a
        later call."""
        for name, availability in self.records.availabilities().items():
            if self._availability.get(name, Availability.ACTIVE) is not availability and \
                    self.store.set_availability(name, availability, self.clock()) is not None:
                self._availability[name] = availability

    def admit(self, node: str, payload: Payload) -> None:
        """Conflict when ``payload`` would make a new container on a drained node (a paused
        one takes a container sent to it by name; placement passes over both)."""
        if payload.type in NEW_CONTAINERS and \
                self._availability.get(node) is Availability.DRAIN:
            raise Conflict(f"node {node} is drained (availability 'drain'): it takes no new "
                           f"container; 'wharf node update --availability active {node}' "
                           "lets it take them again")

    # --- commands ------------------------------------------------------------------------

    async def submit(self, node: str, payload: Payload, *, principal: str, deadline: float,
                     idempotency_key: str | None = None, request_hash: str | None = None,
                     watch: bool = False) -> CommandRow:
        """Record and publish a command for ``node`` (or every ready node for ``*``); a
        create or run for a drained node is refused first (:meth:`admit`).

        With an ``idempotency_key`` this principal used before, the earlier command is
        returned and nothing is sent again, or :class:`KeyReused` raised when its
        ``request_hash`` (:func:`fingerprint`) differs. ``watch``: the caller will
        :meth:`wait` for it (its results are then kept in memory from the start, so one that
        arrives before the wait is not missed).
        """
        if idempotency_key is not None:
            previous = await self._off_loop(self.records.command_by_key, principal,
                                            idempotency_key)
            if previous is not None:
                return await self._again(same_request(previous, request_hash), watch)
        with self._refusals(payload.type):
            if node == BROADCAST_NODE:
                expected = [n.name for n in self.store.nodes() if self.node_ready(n)]
                if not expected:
                    raise Unavailable("no node is ready")
            else:
                expected = [self.require_ready(node)]
                self.admit(node, payload)
        envelope = CommandEnvelope.new(node, payload, deadline=timedelta(seconds=deadline),
                                       principal=principal, reply_to=self.gateway_id)
        row = await self._off_loop(self.records.add_command, envelope, expected,
                                   idempotency_key, self.clock(), request_hash)
        if row.id != str(envelope.id):  # the same key raced us in: it stands
            return await self._again(same_request(row, request_hash), watch)
        if watch:
            self._watched[row.id] = _Watched(row, report=True)
        try:
            await self.publisher.publish(envelope)
        except MaybeSent as exc:  # it may be queued: the record and its key stand
            self._watched.pop(row.id, None)
            self._remember_maybe_sent(row.id)
            self.observe(payload.type, "refused", None)
            raise MaybeSent(f"{exc}; command {row.id} may have gone out: ask again with the "
                            "same Idempotency-Key to have it sent again and its one result"
                            ) from exc
        except Unavailable:
            self._watched.pop(row.id, None)
            self.records.forget_command(row.id)  # never sent: its idempotency key is free
            self.observe(payload.type, "refused", None)
            raise
        except BaseException:  # cancelled: it may have gone out, so the record stays
            self._watched.pop(row.id, None)
            raise
        if not watch:
            self.observe(payload.type, "accepted", None)
        return row

    async def _again(self, row: CommandRow, watch: bool) -> CommandRow:
        """A recorded command asked for again with its Idempotency-Key. Still without an
        answer from its node, not waited for here, and recorded by another gateway (shared
        records) or before this process started, it is published again, its result to come
        here: the gateway that recorded it may have died before it went out or before its
        answer came back (the node runs an id once; a second copy only repeats the recorded
        result, to this gateway)."""
        if watch and row.id not in self._watched:
            self._watched[row.id] = _Watched(row)  # before the publish: no result is missed
        elif row.id in self._watched:
            return row  # this gateway sent it, or is sending it
        if row.results or row.node == BROADCAST_NODE or not row.envelope or \
                row.status(self.clock()) != "pending" or not (
                    self.records.shared or row.created_at < self.started
                    or row.id in self._maybe_sent):
            return row
        try:
            envelope = CommandEnvelope.model_validate_json(row.envelope)
            await self.publisher.publish(envelope.model_copy(update={"reply_to":
                                                                     self.gateway_id}))
            self._maybe_sent.pop(row.id, None)
        except Unavailable:
            pass  # the first copy may be on its way: the wait tells what became of it
        except BaseException:
            self._watched.pop(row.id, None)
            raise
        return row

    async def _off_loop(self, call: Callable[..., _T], *args: Any) -> _T:
        """Shared records (PostgreSQL) wait for the database's WAL flush: in a thread, so the
        loop serves other requests meanwhile and concurrent commits share one flush. The
        embedded SQLite store is quicker than a thread hop: on the loop."""
        if self.records.shared:
            return await asyncio.to_thread(call, *args)
        return call(*args)

    def _remember_maybe_sent(self, command_id: str) -> None:
        self._maybe_sent[command_id] = None
        while len(self._maybe_sent) > MAYBE_SENT_KEPT:  # the oldest are long past deadline
            del self._maybe_sent[next(iter(self._maybe_sent))]

    @contextmanager
    def _refusals(self, kind: str) -> Iterator[None]:
        """An error raised in the block refuses a command of type ``kind``: observed so."""
        try:
            yield
        except WharfError:
            self.observe(kind, "refused", None)
            raise

    async def wait(self, command_id: str) -> CommandRow:
        """The command once every expected node answered or its deadline passed."""
        watched = self._watched.get(command_id)
        if watched is None:
            row = self.records.command(command_id)
            if row is None:
                raise NotFound(f"no such command: {command_id}")
            watched = self._watched[command_id] = _Watched(row)
        watched.waiters += 1
        try:
            while True:
                row, now = watched.row, self.clock()
                status = row.status(now)
                if status != "pending":
                    if watched.report:  # once, for the request that sent it
                        watched.report = False
                        self.observe(row.type, status, now - row.created_at)
                    return row
                watched.changed.clear()
                try:
                    await asyncio.wait_for(watched.changed.wait(),
                                           max(0.01, row.deadline - now))
                except TimeoutError:
                    self._catch_up(watched)  # what another gateway recorded (expired)
                    continue  # the status turns "unknown" after the deadline
        finally:
            watched.waiters -= 1
            if watched.waiters == 0:
                self._watched.pop(command_id, None)

    def _catch_up(self, watched: _Watched) -> None:
        """Results of a stored command that reached the store but not this gateway's memory."""
        if watched.unstored or not self.records.shared:
            return
        stored = self.records.command(watched.row.id)
        for node, document in (stored.results if stored is not None else {}).items():
            self.on_result(watched.row.id, node, document)

    def watching(self, command_id: str) -> bool:
        return command_id in self._watched

    def waiting(self) -> bool:
        """Whether any request waits for a result now."""
        return bool(self._watched)

    def on_result(self, command_id: str, node: str, document: dict[str, Any]) -> None:
        """Called on the loop by the bus when it stored ``node``'s result for a command (or
        found one stored first, by another gateway): the first result stands, except over an
        ``expired`` inferred from a dead letter, as in the store."""
        watched = self._watched.get(command_id)
        if watched is None:
            return
        old = watched.row.results.get(node)
        if old is None or (old["Status"] == "expired" and document["Status"] != "expired"):
            watched.row.results[node] = document
            watched.changed.set()

    async def call(self, node: str, payload: Payload, *, principal: str, deadline: float,
                   idempotency_key: str | None = None, request_hash: str | None = None) -> Any:
        """Submit, wait and return the node's result, or raise its error kind."""
        if payload.type not in MUTATING:
            return await self.read(node, payload, principal=principal, deadline=deadline)
        row = await self.submit(node, payload, principal=principal, deadline=deadline,
                                idempotency_key=idempotency_key, request_hash=request_hash,
                                watch=True)
        return outcome(await self.wait(row.id), self.clock())

    async def read(self, node: str, payload: Payload, *, principal: str,
                   deadline: float) -> Any:
        """A read (inspect, list, logs…): sent and waited for like a command, but held in
        memory only: nothing of it is written to the store, since it changes nothing and a
        follower asks many times (its result is in the answer, not in /v1/commands)."""
        with self._refusals(payload.type):
            self.require_ready(node)
        envelope = CommandEnvelope.new(node, payload,
                                       deadline=timedelta(seconds=deadline),
                                       principal=principal, reply_to=self.gateway_id)
        row = CommandRow(id=str(envelope.id), idempotency_key=None, principal=principal,
                         node=node, type=payload.type, created_at=self.clock(),
                         deadline=envelope.deadline.timestamp(), envelope="",
                         expected=[node])
        watched = self._watched[row.id] = _Watched(row, unstored=True, report=True)
        try:
            with self._refusals(payload.type):
                await self.publisher.publish(envelope)
            return outcome(await self.wait(row.id), self.clock())
        finally:
            if watched.waiters == 0:
                self._watched.pop(row.id, None)

    def take_unstored(self, command_id: str, node: str, document: dict[str, Any]) -> bool:
        """The bus asks first: True when the result is a read's, handed to its waiter here
        and not to be stored."""
        watched = self._watched.get(command_id)
        if watched is None or not watched.unstored:
            return False
        self.on_result(command_id, node, document)
        return True


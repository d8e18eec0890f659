"""The cluster's containers in memory, indexed: what ``GET /v1/containers`` reads.

Every gateway consumes every node's reports (its queue is bound to them all), so each keeps
the whole view here and SQLite (:class:`~wharf.gateway.store.ClusterStore`) only as its
durable copy, loaded back at start. An :class:`Entry` is a container's list entry parsed once,
when it arrives: the fields the filters read, its times as microseconds since the epoch (for
``Status``), and its JSON pre-rendered with its node, split where the fresh ``Status`` goes.

:class:`ContainerIndex` holds them per node (the ``node`` filter is a dict lookup), by label
key and key=value (the ``label`` filter), with each node's counts kept as rows come and go.
A snapshot is applied as a :class:`Diff` against the node's rows (:meth:`ContainerIndex.diff`
then, once the durable copy has it, :meth:`ContainerIndex.apply`): a row whose content did not
change (``Status`` aside: the gateway words it itself) is neither written nor rebuilt. Rows are
listed in (node, id) order, the order a page's cursor (:func:`encode_cursor`: ``NODE/ID``)
continues from.

Not thread-safe: the store calls it under its lock.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from wharf.dockerapi import UP_STATES, ZERO_TIME, parse_time
from wharf.errors import InvalidArgument

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
# Where a row's Status goes: a value no container's JSON holds (a fresh one per process).
_SLOT = f"wharf-status-{uuid.uuid4().hex}"
_SLOT_JSON = json.dumps(_SLOT).encode()
# A page's cursor: the node (wharf.protocol's node name) and the id of the row before it.
CURSOR = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}/[!-~]{1,256}")
_K = TypeVar("_K")


def dumps(value: Any) -> bytes:
    """JSON as FastAPI's JSONResponse renders it (compact, UTF-8)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode()


def stamp(text: str) -> int | None:
    """An RFC 3339 time as microseconds since the epoch; None when it does not parse (Docker
    words such a time "Less than a second")."""
    try:
        return (parse_time(text) - EPOCH) // MICROSECOND
    except InvalidArgument:
        return None


@dataclass(slots=True, eq=False)
class Entry:
    """One container of the view: what filters and ``Status`` need, and its row's JSON."""

    node: str
    id: str
    state: str
    names: tuple[str, ...]  # as listed ("/web")
    image: str
    image_id: str
    labels: dict[str, str]
    exit_code: int
    started: int | None  # µs since the epoch (None: not a time)
    finished: int | None
    never_started: bool  # StartedAt is Docker's zero time (or missing)
    never_finished: bool
    head: bytes  # the row's JSON up to its Status value
    tail: bytes  # and after it
    digest: bytes  # of its row's JSON, Status aside (what a snapshot's row is compared by)

    def document(self) -> dict[str, Any]:
        """The row as a dict (``Status`` empty: the caller words it); parsed when asked, not
        kept: a parsed row costs ten times its JSON in memory."""
        row: dict[str, Any] = json.loads(self.head + self.tail)
        return row


def entry(node: str, data: dict[str, Any], key: str | None = None) -> Entry:
    """``data`` (a node's list entry) as an :class:`Entry` of ``node``, under ``key`` (its
    ``Id`` unless told)."""
    return _entry(node, data, dumps({**data, "Node": node, "Status": _SLOT}), key)


def _entry(node: str, data: dict[str, Any], rendered: bytes, key: str | None) -> Entry:
    started_at = str(data.get("StartedAt") or ZERO_TIME)
    finished_at = str(data.get("FinishedAt") or ZERO_TIME)
    try:
        exit_code = int(data.get("ExitCode") or 0)
    except (TypeError, ValueError):
        exit_code = 0
    head, _, tail = rendered.partition(_SLOT_JSON)
    labels = data.get("Labels")
    return Entry(
        node=node, id=key if key is not None else str(data["Id"]),
        state=str(data.get("State", "")), names=tuple(str(n) for n in data.get("Names") or ()),
        image=str(data.get("Image") or ""), image_id=str(data.get("ImageID") or ""),
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
        exit_code=exit_code, started=stamp(started_at), finished=stamp(finished_at),
        never_started=started_at == ZERO_TIME, never_finished=finished_at == ZERO_TIME,
        head=head + b'"', tail=b'"' + tail, digest=_digest(rendered))


def _digest(rendered: bytes) -> bytes:
    """What tells a changed entry from an unchanged one: its row's JSON with the Status slot
    (the daemon's ``Status`` text ages by itself; the gateway words its own)."""
    return hashlib.blake2b(rendered, digest_size=16).digest()


def stored(row: Entry) -> str:
    """The JSON the durable copy keeps of a row: the row with its ``Node`` and an empty
    ``Status`` (what :func:`entry` takes back at load)."""
    return (row.head + row.tail).decode()


def digest_of(value: Any) -> bytes:
    """A digest of any JSON value (a snapshot's images: rewritten only when they change)."""
    return _digest(dumps(value))


def matches(row: Entry, terms: dict[str, list[str]]) -> bool:
    """Whether a row passes ``/v1/containers`` filters: any value of a key, every key; every
    ``label`` (as dockerd: docker-compose finds a service by three labels)."""
    return all((all if key == "label" else any)(_match(row, key, v) for v in values)
               for key, values in terms.items())


def _match(row: Entry, key: str, value: str) -> bool:
    if key == "node":
        return row.node == value
    if key == "name":
        return any(value in n.lstrip("/") for n in row.names)
    if key == "id":
        return row.id.startswith(value)
    if key == "status":
        return row.state == value
    if key == "ancestor":
        return row.image == value or row.image_id.startswith(value)
    if key == "label":
        name, equals, wanted = value.partition("=")
        return name in row.labels and (not equals or row.labels[name] == wanted)
    return False


def encode_cursor(row: Entry) -> str:
    """The cursor of the page after ``row``: ``NODE/ID`` (its node and id)."""
    return f"{row.node}/{row.id}"


def decode_cursor(cursor: str) -> tuple[str, str]:
    """(node, id) after which a page starts: any node and id, a row of the view or not (the
    page is what follows them in (node, id) order).

    Raises:
        InvalidArgument: not ``NODE/ID`` (the route's pattern says so first).
    """
    if not CURSOR.fullmatch(cursor):
        raise InvalidArgument(f"invalid cursor {cursor!r}: it is NODE/ID, the previous "
                              "page's X-Wharf-Next-Cursor as it came")
    node, _, container = cursor.partition("/")
    return node, container


@dataclass
class Diff:
    """What a snapshot changes on its node: rows to write (new or changed) and ids gone."""

    node: str
    upserts: list[Entry]
    removed: list[str]

    def __bool__(self) -> bool:
        return bool(self.upserts or self.removed)


class ContainerIndex:
    """Every node's containers by id, with label indexes, counts and (node, id) order."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Entry]] = {}
        self._sorted: dict[str, list[Entry]] = {}  # per node, by id; dropped on a change
        self._nodes: list[str] = []  # nodes with rows, sorted
        self._by_key: dict[str, set[Entry]] = {}
        self._by_pair: dict[tuple[str, str], set[Entry]] = {}
        self._running: dict[str, int] = {}

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._rows.values())

    # --- changes ------------------------------------------------------------------------

    def diff(self, node: str, containers: Iterable[dict[str, Any]]) -> Diff:
        """A snapshot's rows against what the view has of ``node`` (nothing changes yet)."""
        have = self._rows.get(node, {})
        upserts: list[Entry] = []
        seen: set[str] = set()
        for data in containers:
            key = str(data["Id"])
            seen.add(key)
            rendered = dumps({**data, "Node": node, "Status": _SLOT})
            old = have.get(key)
            if old is None or old.digest != _digest(rendered):
                upserts.append(_entry(node, data, rendered, key))
        return Diff(node, upserts, [key for key in have if key not in seen])

    def apply(self, diff: Diff) -> None:
        for row in diff.upserts:
            self.put(row)
        for key in diff.removed:
            self.remove(diff.node, key)

    def put(self, row: Entry) -> None:
        """Add or replace a row (by node and id)."""
        rows = self._rows.get(row.node)
        if rows is None:
            rows = self._rows[row.node] = {}
            bisect.insort(self._nodes, row.node)
        old = rows.get(row.id)
        if old is not None:
            self._unindex(old)
        rows[row.id] = row
        self._sorted.pop(row.node, None)
        for pair in row.labels.items():
            self._by_key.setdefault(pair[0], set()).add(row)
            self._by_pair.setdefault(pair, set()).add(row)
        self._running[row.node] = self._running.get(row.node, 0) + (row.state == "running")

    def remove(self, node: str, key: str) -> None:
        rows = self._rows.get(node)
        old = rows.pop(key, None) if rows is not None else None
        if old is None:
            return
        self._unindex(old)
        self._sorted.pop(node, None)
        if not rows:
            del self._rows[node]
            self._nodes.remove(node)
            self._running.pop(node, None)

    def _unindex(self, row: Entry) -> None:
        for pair in row.labels.items():
            _discard(self._by_key, pair[0], row)
            _discard(self._by_pair, pair, row)
        self._running[row.node] -= row.state == "running"

    # --- reads --------------------------------------------------------------------------

    def counts(self, node: str) -> tuple[int, int]:
        """(containers, running) on ``node``."""
        return len(self._rows.get(node, ())), self._running.get(node, 0)

    def node_rows(self, node: str) -> list[Entry]:
        """``node``'s rows by id."""
        ordered = self._sorted.get(node)
        if ordered is None:
            rows = self._rows.get(node, {})
            ordered = self._sorted[node] = [rows[k] for k in sorted(rows)]
        return ordered

    def select(self, terms: dict[str, list[str]], every: bool, after: tuple[str, str] | None,
               limit: int | None) -> tuple[list[Entry], bool]:
        """The rows ``terms`` let through, in (node, id) order after ``after``, at most
        ``limit``; and whether more follow. Without ``every`` (``all``) and without a
        ``status`` filter only running, paused and restarting containers count."""
        up_only = not every and "status" not in terms
        chosen: list[Entry] = []
        for row in self._candidates(terms, after):
            if up_only and row.state not in UP_STATES:
                continue
            if terms and not matches(row, terms):
                continue
            if limit is not None and len(chosen) == limit:
                return chosen, True
            chosen.append(row)
        return chosen, False

    def _candidates(self, terms: dict[str, list[str]], after: tuple[str, str] | None
                    ) -> Iterator[Entry]:
        """Rows in (node, id) order after ``after``, narrowed by the node or label index."""
        if "node" not in terms and "label" in terms:
            found: set[Entry] | None = None  # the rows with every label asked for
            for value in terms["label"]:
                name, equals, wanted = value.partition("=")
                having = self._by_pair.get((name, wanted), set()) if equals else \
                    self._by_key.get(name, set())
                found = set(having) if found is None else found & having
            found = found or set()
            ordered = sorted(found, key=lambda r: (r.node, r.id))
            if after is not None:
                ordered = [r for r in ordered if (r.node, r.id) > after]
            yield from ordered
            return
        nodes = sorted(set(terms["node"]) & self._rows.keys()) if "node" in terms else \
            self._nodes
        start = 0 if after is None else bisect.bisect_left(nodes, after[0])
        for node in nodes[start:]:
            rows = self.node_rows(node)
            if after is not None and node == after[0]:
                rows = rows[bisect.bisect_right([r.id for r in rows], after[1]):]
            yield from rows


def _discard(index: dict[_K, set[Entry]], key: _K, row: Entry) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(row)
        if not members:
            del index[key]

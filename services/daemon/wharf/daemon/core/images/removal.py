"""Removing images (``rmi``): untag a name, or delete an image by ID and what it alone used.

dockerd's ImageDelete, step by step: removing a repository's last tag also drops that
repository's digest references, and the image goes when no reference is left; an image a
container uses is only untagged, and then only when forced. An image other images name as their
parent (a build's intermediate steps) cannot be deleted by ID; deleting an image also deletes its
untagged parents that nothing else uses, unless told not to (``noprune``).
"""

from __future__ import annotations

from dataclasses import dataclass

from wharf import reference
from wharf.daemon.core.images.store import ImageRecord, ImageStore
from wharf.errors import Conflict, InvalidArgument


@dataclass(frozen=True)
class Removal:
    """What a remove did, in Docker's order: untagged names, then deleted IDs."""

    untagged: list[str]
    deleted: list[str]


def remove(store: ImageStore, text: str, *, force: bool = False,
           prune: bool = True, collect: bool = True) -> Removal:
    """Docker's ``rmi``: untag a name, or delete an image by ID (and what it alone used).

    Removing a repository's last tag also drops that repository's digest references, and
    the image goes when no reference is left — dockerd's ImageDelete, step by step. With
    ``prune`` its untagged parents go too while nothing else uses them; with ``collect`` the
    layers and blobs no image references any more are garbage-collected.
    """
    record = store.resolve(text)
    by_name = _resolve_by_name(store, text)
    users = store.users(record.id)
    refs = record.tags + record.repo_digests
    if by_name is not None:
        untagged = _untag(store, record, by_name, refuse_last=bool(users and not force),
                          text=text, user=users[0] if users else "")
        if len(untagged) < len(refs):
            return Removal(untagged=untagged, deleted=[])
    else:
        repositories = {reference.parse(r).name for r in refs}
        if len(repositories) > 1 and not force:
            raise Conflict(
                f"conflict: unable to delete {record.id[7:19]} (must be forced) - image is "
                "referenced in multiple repositories"
            )
        if users and not force:
            raise Conflict(
                f"conflict: unable to delete {record.id[7:19]} (must be forced) - image is "
                f"being used by stopped container {users[0]}"
            )
        if store.children(record.id):
            raise Conflict(f"conflict: unable to delete {record.id[7:19]} (cannot be forced) - "
                           "image has dependent child images")
        untagged = refs
    with store.state.tx() as db:
        db.execute("DELETE FROM tags WHERE image_id = ?", (record.id,))
        db.execute("DELETE FROM repo_digests WHERE image_id = ?", (record.id,))
        if users:  # forced while in use: Docker keeps the image, only untagged
            return Removal(untagged=untagged, deleted=[])
        if store.children(record.id):  # untagged by name: a parent stays as it is
            return Removal(untagged=untagged, deleted=[])
        db.execute("DELETE FROM images WHERE id = ?", (record.id,))
    deleted = [record.id, *(_remove_parents(store, record.parent) if prune else [])]
    if collect:
        store.collect_garbage()
    return Removal(untagged=untagged, deleted=deleted)


def _remove_parents(store: ImageStore, parent: str) -> list[str]:
    """Delete ``parent`` and its own parents, in turn, while each is untagged and nothing
    (child image, container, operation in progress) uses it: dockerd's ``imageDeleteHelper``
    with prune."""
    deleted: list[str] = []
    while parent:
        with store.state.tx() as db:
            row = db.execute("SELECT parent FROM images WHERE id = ?", (parent,)).fetchone()
            if (row is None or store.users(parent) or parent in store.leases.held()
                    or db.execute("SELECT 1 FROM tags WHERE image_id = ? UNION SELECT 1 FROM "
                                  "repo_digests WHERE image_id = ? UNION SELECT 1 FROM images "
                                  "WHERE parent = ?", (parent,) * 3).fetchone()):
                break
            db.execute("DELETE FROM images WHERE id = ?", (parent,))
        deleted.append(parent)
        parent = str(row["parent"] or "")
    return deleted

def _untag(store: ImageStore, record: ImageRecord, name: str, *, refuse_last: bool,
           text: str, user: str) -> list[str]:
    """Remove reference ``name`` (and its repository's digests when it was the last tag)."""
    ref = reference.parse(name)
    dropped = [name]
    if not ref.digest and not any(
        t != name and reference.parse(t).name == ref.name for t in record.tags
    ):
        dropped += [d for d in record.repo_digests if reference.parse(d).name == ref.name]
    if refuse_last and len(dropped) == len(record.tags) + len(record.repo_digests):
        raise Conflict(
            f'conflict: unable to remove repository reference "{text}" (must force) - '
            f"container {user} is using its referenced image {record.id[7:19]}"
        )
    with store.state.tx() as db:
        for item in dropped:
            table = "repo_digests" if "@" in item else "tags"
            db.execute(f"DELETE FROM {table} WHERE name = ?", (item,))  # noqa: S608
    return dropped

def _resolve_by_name(store: ImageStore, text: str) -> str | None:
    """The normalised name ``text`` denotes when it is a reference that exists, else None."""
    try:
        ref = reference.parse(text).with_default_tag()
    except InvalidArgument:
        return None
    table = "repo_digests" if ref.digest else "tags"
    with store.state.tx() as db:
        row = db.execute(
            f"SELECT 1 FROM {table} WHERE name = ?", (ref.string,)  # noqa: S608
        ).fetchone()
    return ref.string if row else None


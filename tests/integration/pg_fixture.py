"""A PostgreSQL database of its own for a test: made in the cluster `infra/postgres.sh` runs
(owner ``wharf_gateway``, whose URL that script wrote), dropped afterwards."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DB_ENV = Path("/etc/wharf/gateway-db.env")


def _admin(sql: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-v",
                    "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True, timeout=60)


@contextmanager
def scratch_database() -> Iterator[str]:
    """The URL of a new, empty database the gateways' role owns."""
    text = DB_ENV.read_text()  # infra/postgres.sh (make postgres; make test runs it)
    url = re.search(r"^WHARF_GATEWAY_DATABASE_URL=(\S+)$", text, re.MULTILINE)
    assert url is not None, f"no WHARF_GATEWAY_DATABASE_URL in {DB_ENV}"
    name = f"wharf_test_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}" OWNER wharf_gateway')
    try:
        yield url.group(1).rsplit("/", 1)[0] + "/" + name
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

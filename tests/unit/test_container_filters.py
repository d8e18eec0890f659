"""``docker ps`` filters as dockerd applies them: values of one key match if any does, but
every ``label`` must be there (docker-compose finds a service's containers by three labels)."""

from __future__ import annotations

from typing import Any

import pytest

from wharf.daemon.core.containers.filters import ContainerFilter
from wharf.daemon.core.containers.records import ContainerRecord


def _record(name: str, labels: dict[str, str]) -> Any:
    return ContainerRecord.model_construct(id=name * 8, name=name, config={"Labels": labels})


DB = _record("db", {"com.docker.compose.project": "p", "com.docker.compose.service": "db",
                    "com.docker.compose.oneoff": "False"})
WEB = _record("web", {"com.docker.compose.project": "p", "com.docker.compose.service": "web",
                      "com.docker.compose.oneoff": "False"})


@pytest.mark.parametrize(("labels", "names"), [
    (["com.docker.compose.project=p"], ["db", "web"]),
    (["com.docker.compose.project=p", "com.docker.compose.service=web"], ["web"]),
    (["com.docker.compose.project=p", "com.docker.compose.oneoff=True"], []),
    (["com.docker.compose.service"], ["db", "web"]),
    (["com.docker.compose.service=db", "com.docker.compose.service=web"], []),
])
def test_every_label_must_match(labels: list[str], names: list[str]) -> None:
    matcher = ContainerFilter.parse({"label": labels})
    assert [r.name for r in (DB, WEB) if matcher.matches(r)] == names


def test_the_values_of_another_key_are_alternatives() -> None:
    matcher = ContainerFilter.parse({"name": ["^db$", "^web$"]})
    assert [r.name for r in (DB, WEB) if matcher.matches(r)] == ["db", "web"]

"""FastAPI dependencies over the Docker wire helpers of :mod:`wharf.dockerapi`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from wharf.dockerapi import parse_filters


def filters_dep(request: Request) -> dict[str, list[str]]:
    return parse_filters(request.query_params.get("filters"))


Filters = Annotated[dict[str, list[str]], Depends(filters_dep)]

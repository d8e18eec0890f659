"""The routes that read the cluster view: ``/v1/nodes``, ``/v1/nodes/{node}`` (and a node's
availability, ``/v1/nodes/{node}/update``, admin) and ``GET /v1/containers``.

They answer from memory (:class:`~wharf.gateway.store.ClusterStore`'s view) and render their
JSON themselves (:mod:`wharf.gateway.status`), as FastAPI's ``JSONResponse`` would word it, so
no answer goes through ``jsonable_encoder`` row by row. ``GET /v1/containers`` takes ``limit``
and ``cursor`` (a page, in (node, id) order, and where the next one starts: its
``X-Wharf-Next-Cursor`` and ``Link: <…>; rel="next"`` headers) and ``fields`` (only those
fields of each row).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from wharf.dockerapi import parse_filters
from wharf.errors import InvalidArgument, NotFound
from wharf.gateway.call import Dispatch
from wharf.gateway.models import (
    CLUSTER_FILTERS,
    MAX_LIMIT,
    ContainerField,
    NodeDocument,
    NodeUpdate,
    answers,
    filters_parameter,
)
from wharf.gateway.routes import Filters, NodeName
from wharf.gateway.status import NodeDocuments, node_document, now_us, render_rows
from wharf.gateway.view import CURSOR, decode_cursor, dumps, encode_cursor

Limit = Annotated[int | None, Query(ge=1, le=MAX_LIMIT, description=(
    f"At most this many rows (1 to {MAX_LIMIT}); when more follow, the answer's "
    "X-Wharf-Next-Cursor header is the cursor of the next page"))]
Cursor = Annotated[str | None, Query(pattern=f"^{CURSOR.pattern}$", description=(
    "Where a page starts: after the row NODE/ID (the previous page's X-Wharf-Next-Cursor)"))]
Fields = Annotated[list[ContainerField] | None, Query(description=(
    "Only these fields of each row, in this order (repeat the parameter: "
    "fields=Id&fields=Node; a field named again counts once)"))]
_NEXT = {"X-Wharf-Next-Cursor": {"description": "the cursor of the next page, NODE/ID of "
                                                "this page's last row (only when more rows "
                                                "follow)",
                                 "schema": {"type": "string"}},
         "Link": {"description": '<the next page>; rel="next" (only when more rows follow)',
                  "schema": {"type": "string"}}}
_ROWS = {"description": "Docker's container list entries, each with its Node (or the fields "
                        "asked for)",
         "content": {"application/json": {"schema": {"type": "array", "items": {
             "type": "object", "additionalProperties": True}}}},
         "headers": _NEXT}

view = APIRouter(prefix="/v1")


def _json(document: Any) -> Response:
    return Response(dumps(document), media_type="application/json")


@view.get("/nodes", summary="Every node: status (ready/down), last seen, labels, load",
          response_model=None, responses={200: {"model": list[NodeDocument]}})
async def list_nodes(request: Request, dispatcher: Dispatch) -> Response:
    documents: NodeDocuments = request.app.state.node_documents
    body = documents.render(dispatcher.store.nodes(), dispatcher.store.container_counts(),
                            dispatcher.node_ready)
    return Response(body, media_type="application/json")


@view.get("/nodes/{node}", summary="One node", response_model=None,
          responses={200: {"model": NodeDocument}, **answers(400, 404)})
async def get_node(dispatcher: Dispatch, node: NodeName) -> Response:
    row = dispatcher.store.node(node)
    if row is None:
        raise NotFound(f"no such node: {node}")
    return _json(node_document(row, dispatcher.node_ready(row), dispatcher.store.counts(node)))


@view.post("/nodes/{node}/update", summary="Set a node's availability: active, pause "
           "(placement skips it) or drain (it also refuses new containers); admin",
           response_model=None, responses={200: {"model": NodeDocument}, **answers(400, 404)})
async def update_node(request: Request, dispatcher: Dispatch, node: NodeName,
                      body: NodeUpdate) -> Response:
    row = dispatcher.set_availability(node, body.Availability)
    request.app.state.events.notify()  # the node's update event, if it changed
    return _json(node_document(row, dispatcher.node_ready(row), dispatcher.store.counts(node)))


@view.get("/containers", summary="Containers of every node (from the cluster view)",
          response_model=None, responses={200: _ROWS, **answers(400)},
          openapi_extra={"parameters": [filters_parameter(CLUSTER_FILTERS)]})
async def cluster_containers(request: Request, dispatcher: Dispatch, all: bool = False,
                             filters: Filters = None, limit: Limit = None,
                             cursor: Cursor = None, fields: Fields = None) -> Response:
    terms = parse_filters(filters)
    unknown = set(terms) - set(CLUSTER_FILTERS)
    if unknown:
        raise InvalidArgument(f"invalid filter '{sorted(unknown)[0]}'")
    if fields is not None:
        fields = list(dict.fromkeys(fields))
    after = decode_cursor(cursor) if cursor is not None else None
    rows, more = dispatcher.store.select(terms, all, after, limit)
    response = Response(render_rows(rows, now_us(), fields), media_type="application/json")
    if more:
        following = encode_cursor(rows[-1])
        response.headers["X-Wharf-Next-Cursor"] = following
        url = request.url.include_query_params(cursor=following)
        response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
    return response

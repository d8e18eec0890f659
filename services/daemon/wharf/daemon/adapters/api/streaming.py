"""Streamed bodies: replies whose body may fail after the head went out (:class:`StreamingReply`),
and request bodies spooled to a file (:func:`spool_body`).

Once a 200 and its headers are sent, the only way left to tell a client that a streamed body
(an image tar, a container archive, logs, events) is not complete is to end the connection
without the terminating zero-length chunk. Starlette lets such an exception escape to uvicorn,
which aborts the connection but logs a confusing traceback ("Caught handled exception, but
response already started" for a WharfError). :class:`StreamingReply` logs one line naming the
request and the real error instead, and returns without ending the body: uvicorn then closes the
connection (with its own one-line "returned without completing response"), and the client sees
an unclean end. JSON progress streams report their errors in the stream first (``errorDetail``),
so only what escapes that ends here.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from wharf.errors import WharfError

log = logging.getLogger("wharf.api")


class StreamingReply(StreamingResponse):
    """A StreamingResponse that never ends its body cleanly after the body failed."""

    _request = "?"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._request = f"{scope.get('method', '?')} {scope.get('path', '?')}"
        await super().__call__(scope, receive, send)

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        chunks = aiter(self.body_iterator)
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except Exception as exc:  # whatever it is, the reply is cut short
                self._log_failure(exc)
                return  # no last chunk: the client must not take what it got as complete
            data = chunk.encode(self.charset) if isinstance(chunk, str) else chunk
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _log_failure(self, exc: Exception) -> None:
        what = "%s failed after its reply started; the reply is cut short: %s"
        if isinstance(exc, WharfError):
            log.warning(what, self._request, exc.message)
        else:  # a bug: its traceback is worth the lines
            log.error(what, self._request, f"{type(exc).__name__}: {exc}", exc_info=exc)


async def spool_body(request: Request, tmp_dir: Path, prefix: str | None = None) -> Path:
    """The request body in a temp file under ``tmp_dir`` (archives can be far larger than
    memory, and a tar scanner reads them twice); nothing is left when the upload fails."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=tmp_dir, delete=False, prefix=prefix,
                                     suffix=".tar") as spool:
        try:
            async for chunk in request.stream():
                spool.write(chunk)
        except BaseException:
            Path(spool.name).unlink(missing_ok=True)
            raise
    return Path(spool.name)

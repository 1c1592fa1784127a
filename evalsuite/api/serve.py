"""How ``evalsuite api`` runs uvicorn: the limits on connections that the ASGI guard cannot see.

``evalsuite.api.guard`` sees a request only once its headers are complete, so it cannot stop
a client that opens connections and sends half a request line on each (slowloris): uvicorn
has a keep-alive timeout but none for reading headers, and by default no cap on connections.
``HeadTimeoutProtocol`` is uvicorn's h11 protocol with both:

- the request line and headers must arrive within ``EVALSUITE_API_HEADER_TIMEOUT`` seconds of
  the connection being opened, or of the previous answer on it; otherwise the connection is
  closed (with a 408 if part of a request had arrived). The same timer bounds how long a
  client may go on sending a body the API already refused;
- with more than ``EVALSUITE_API_MAX_CONNECTIONS`` connections open, a request is answered
  503 at once, its body unread. Each open connection holds at most one read's body (the
  guard's ``EVALSUITE_API_MAX_READ_BODY_BYTES``) unless it sent a token.

uvicorn builds the protocol in each of its worker processes from the import string
``PROTOCOL``; the protocol reads the limits from the environment there, as ``create_app``
reads its settings (``evalsuite api`` puts them into the environment first). uvicorn's own
``limit_concurrency`` is not used: its 503 is plain text that names no setting.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from evalsuite.settings import get_settings, variable

# what ``evalsuite api`` passes as uvicorn's ``http``: an import string, so that uvicorn's
# worker processes can load it
PROTOCOL = f"{__name__}:HeadTimeoutProtocol"


def timeout_answer(timeout_s: int) -> bytes:
    """The 408 written to a connection whose request head did not arrive in time."""
    body = json.dumps(
        {
            "detail": f"the request line and headers did not arrive within {timeout_s} s "
            f"({variable('header_timeout_s')}): send the whole request head at once"
        }
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class HeadTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on request heads and a cap on connections."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.head_timeout_s = settings.header_timeout_s
        self.max_connections = settings.max_connections
        self._head_timer: asyncio.TimerHandle | None = None
        self._app = self.app
        self.app = self._app_unless_full

    # the deadline: armed while no request head is being served -------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm()

    def handle_events(self) -> None:
        served = self.cycle
        super().handle_events()
        if self.cycle is not served:  # a whole request head arrived: the app has it now
            self._disarm()

    def on_response_complete(self) -> None:
        self._arm()  # before uvicorn looks at a pipelined request, which disarms it again
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        partial, _ = self.conn.trailing_data
        if self.conn.their_state is h11.IDLE and partial:  # half a request: say why
            self.transport.write(timeout_answer(self.head_timeout_s))
        self.transport.close()

    # the cap: uvicorn calls self.app for each request head ----------------------------

    async def _app_unless_full(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and len(self.connections) > self.max_connections:
            detail = (
                f"the API is serving its maximum of {self.max_connections} connections "
                f"({variable('max_connections')}): retry shortly, or raise the limit"
            )
            response = JSONResponse({"detail": detail}, 503, headers={"Retry-After": "1"})
            await response(scope, receive, send)
            return
        await self._app(scope, receive, send)

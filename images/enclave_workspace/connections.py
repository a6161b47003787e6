"""Lingering close for the workspace server's HTTP connections, so a save through the hub's proxy is never lost.

configurable-http-proxy keeps no connection pool for Unix-socket targets, so it asks every request to close the
connection (`Connection: close`). Tornado honours that by closing the socket as soon as its response is flushed.
Node, meanwhile, can still have an empty write queued behind the request body (`OutgoingMessage.end()` flushes
once more while the body is buffered); that write meets a closed socket, fails with EPIPE, and the proxy answers
503 for a request the workspace has already served (nodejs/node#41062). Seen as one lost notebook save in 400
under load.

Here the server still initiates the close, as HTTP requires, but as web servers have long done ("lingering
close"): it shuts down its sending side once the response is out (the peer reads end-of-file), then reads and
discards whatever the peer still sends until the peer closes, or LINGER_S passes, and only then closes.
"""

from __future__ import annotations

import socket
from datetime import timedelta

from tornado import gen, http1connection, iostream
from tornado.ioloop import IOLoop

LINGER_S = 5.0  # how long a half-closed connection may wait for its peer to close
LINGER_READ = 64 * 1024

_original_finish_request = http1connection.HTTP1Connection._finish_request


async def _linger(stream: iostream.IOStream) -> None:
    try:
        while True:  # discard: the request is answered, anything more is the peer's flush
            await gen.with_timeout(timedelta(seconds=LINGER_S), stream.read_bytes(LINGER_READ, partial=True))
    except (iostream.StreamClosedError, gen.TimeoutError, OSError):
        pass
    finally:
        stream.close()


def _finish_request(self: http1connection.HTTP1Connection, future: object) -> None:
    stream = self.stream
    closing = not self.is_client and self._disconnect_on_finish and stream is not None and not stream.closed()
    if closing and stream.socket is not None:
        try:
            stream.socket.shutdown(socket.SHUT_WR)  # the response is flushed: the peer reads end-of-file
        except OSError:
            pass  # the peer has gone already: close as usual
        else:
            self.detach()  # tornado's request loop ends here; the stream is closed by _linger
            IOLoop.current().add_callback(_linger, stream)
            return
    _original_finish_request(self, future)


def install() -> None:
    """Make every server-side HTTP/1 connection of this process close lingeringly (idempotent)."""
    http1connection.HTTP1Connection._finish_request = _finish_request

"""Bounded connections for the HTTP server: a cap on open connections, a request read timeout, quiet EMFILE logs.

uvicorn (0.54/0.55, h11) times out only a keep-alive connection that sits idle *after* a response: a connection
that never sends a byte, or stops half-way through its headers or body, is kept forever, and its
``limit_concurrency`` answers 503 to every request once that many connections are open — stalled ones included,
so ``/health`` would get 503 too. Enough stalled sockets exhaust the descriptor limit: ``accept()`` fails with
EMFILE, asyncio logs a traceback per failed ``accept()`` (up to ``backlog`` of them per second) and nothing is
served any more.

Here, at the asyncio level (the ``asyncio`` event loop, the ``h11`` protocol):

* :class:`ConnectionGuard` holds at most ``max_connections`` connections. The listening socket is a
  :class:`GuardedSocket`, whose ``accept()`` takes a new connection only while fewer than ``max_connections +
  headroom`` sockets are open, so descriptors stay bounded and ``accept()`` never meets EMFILE. A new connection
  beyond ``max_connections`` makes room by closing the least recently active connection that is idle or
  stalled (no request, a partial request, or a body still arriving); connections whose request the app is
  working on are never closed. Only when all of them are busy is the new one refused (503, closed).
* :class:`GuardedH11Protocol` holds a new request's bytes until the whole request is in — its headers and a
  body of up to :data:`BODY_BUFFER` bytes (:func:`request_ready`) — and only then hands them to h11 and the app:
  a stalled request never starts the app. It gets ``read_timeout`` seconds, counted from the connection's start
  (its first request) or from the first byte of a later request on a kept-alive connection; then the connection
  is closed, with a 408 when a request had begun. (A larger or chunked body streams to the app, whose own
  ``read_timeout`` answers 408: ``deploy.serve``.) Idle kept-alive connections close after uvicorn's
  ``timeout_keep_alive``. A client that hangs up in the middle of a request is counted and logged in one line.
* It does a bounded amount of work per event-loop turn (:data:`ACCEPTS_PER_TURN` accepts,
  :data:`CLOSES_PER_TURN` timed-out connections closed), so a burst of thousands of connections or timeouts is
  spread over many short turns and other connections — /health's — are served in between.
* :func:`quiet_accept_errors` makes an ``accept()`` failure (EMFILE from descriptors opened elsewhere) one log
  line at most every 10 s, with a count, instead of a traceback per failed call.
"""
from __future__ import annotations

import asyncio
import errno
import json
import logging
import re
import resource
import socket
import time
from collections import OrderedDict, deque
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from deploy import DeployError

logger = logging.getLogger("deploy.connections")

SCOPE_KEY = "deploy.connection"  # the request's connection, in its ASGI scope
OWN_FDS = 128  # descriptors kept for the process itself (model files, threads, pipes, logs) beyond the connections
# Work per event-loop turn: asyncio runs every callback that is ready in one turn, so 2,048 accepts (its default
# burst) or 20,000 timeouts due at once make one long turn that every other connection, /health's too, waits for.
ACCEPTS_PER_TURN = 64
CLOSES_PER_TURN = 64
HEADER_LIMIT = 16 * 1024  # h11's default limit on a request's headers (larger ones go to h11, which answers 400)
BODY_BUFFER = 64 * 1024  # bodies up to this size are held until complete; larger ones stream to the app
_CONTENT_LENGTH = re.compile(rb"\ncontent-length:[ \t]*([0-9]{1,18})[ \t]*\r?(?=\n)")


def headroom(max_connections: int) -> int:
    """Connections accepted beyond ``max_connections`` while as many older ones are being closed."""
    return max(1, min(64, max_connections // 8))


def raise_nofile_limit() -> tuple[int, int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; ``(soft before, soft now, hard)``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            target = soft
        return soft, target, hard
    return soft, soft, hard


def fd_limit() -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def default_max_connections(limit: int | None = None) -> int:
    """The most connections that fit the soft descriptor limit with :data:`OWN_FDS` and the headroom to spare."""
    limit = fd_limit() if limit is None else limit
    n = limit - OWN_FDS
    return max(1, n - headroom(n))


def check_max_connections(max_connections: int, limit: int | None = None) -> None:
    """:class:`DeployError` when ``max_connections`` does not fit the descriptor limit."""
    limit = fd_limit() if limit is None else limit
    need = max_connections + headroom(max_connections) + OWN_FDS // 2
    if max_connections < 1 or need > limit:
        raise DeployError(f"--max-connections {max_connections} needs about {need} file descriptors, the limit "
                          f"(RLIMIT_NOFILE) is {limit}: use at most {default_max_connections(limit)}, or raise "
                          "the limit (ulimit -n)")


class RateLimitedLog:
    """Log a message at most once per ``interval`` seconds per key, saying how many were left out."""

    def __init__(self, log: logging.Logger, interval: float = 10.0) -> None:
        self.log = log
        self.interval = interval
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def __call__(self, level: int, key: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -self.interval) < self.interval:
            self._skipped[key] = self._skipped.get(key, 0) + 1
            return
        skipped = self._skipped.pop(key, 0)
        since = now - self._last.get(key, now)
        self._last[key] = now
        suffix = f" ({skipped} more like this in the last {since:.0f} s)" if skipped else ""
        self.log.log(level, message + suffix, *args)


def _raw_response(status: int, reason: str, message: str, extra: str = "") -> bytes:
    body = json.dumps({"error": message}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"{extra}connection: close\r\n\r\n").encode() + body


class ConnectionGuard:
    """Counts and bounds one server's connections (event-loop thread only)."""

    def __init__(self, max_connections: int, read_timeout: float, body_limit: int = BODY_BUFFER) -> None:
        if max_connections < 1 or not read_timeout > 0:
            raise ValueError("max_connections must be >= 1 and read_timeout > 0")
        self.max_connections = max_connections
        self.body_limit = min(body_limit, BODY_BUFFER)
        self.headroom = headroom(max_connections)
        self.read_timeout = read_timeout
        self.held: OrderedDict[GuardedH11Protocol, None] = OrderedDict()  # least recently active first
        self.pending = 0  # accepted, connection_made not run yet
        self.closing = 0  # closed by the guard, connection_lost not run yet
        self.evicted = 0
        self.refused = 0
        self.read_timeouts = 0
        self.client_disconnects = 0
        self._last_made = time.monotonic()
        self._accepts_this_turn = 0
        self._timed_out: deque[GuardedH11Protocol] = deque()  # closed CLOSES_PER_TURN a turn
        self._closer: asyncio.Handle | None = None
        self._log = RateLimitedLog(logger)
        self._log_often = RateLimitedLog(logger, interval=1.0)  # for lines a client can cause at will
        self.refusal = _raw_response(503, "Service Unavailable", f"too many connections (--max-connections "
                                     f"{max_connections}, all busy); retry later", "retry-after: 1\r\n")
        self.timeout_408 = _raw_response(408, "Request Timeout", f"the request did not arrive within "
                                         f"--read-timeout {read_timeout:g} s")

    @property
    def in_use(self) -> int:
        """Accepted sockets not closed yet (each one a descriptor)."""
        return len(self.held) + self.pending + self.closing

    def stats(self) -> dict[str, int]:
        return {"open": len(self.held), "max": self.max_connections, "evicted": self.evicted,
                "refused": self.refused, "read_timeouts": self.read_timeouts,
                "client_disconnects": self.client_disconnects}

    # -- the listening socket --
    def may_accept(self) -> bool:
        if self.pending and time.monotonic() - self._last_made > 5.0:
            self.pending = 0  # a transport that failed to start never reported; forget it
        return (self._accepts_this_turn < ACCEPTS_PER_TURN
                and self.in_use < self.max_connections + self.headroom)

    def accepted(self) -> None:
        self.pending += 1
        if self._accepts_this_turn == 0:
            asyncio.get_running_loop().call_soon(self._new_turn)
        self._accepts_this_turn += 1

    def _new_turn(self) -> None:
        self._accepts_this_turn = 0

    # -- the protocol --
    def admit(self, conn: GuardedH11Protocol) -> bool:
        """A new connection is up: keep it (closing an idle one when at the cap), or refuse it (False)."""
        self.pending = max(0, self.pending - 1)
        self._last_made = time.monotonic()
        if len(self.held) >= self.max_connections and not self._evict_one():
            self.refused += 1
            self._log(logging.WARNING, "refused", "--max-connections %d reached and every connection busy: "
                      "refusing new connections with 503", self.max_connections)
            return False
        self.held[conn] = None
        return True

    def _evict_one(self) -> bool:
        for _ in range(len(self.held)):
            conn = next(iter(self.held))
            if conn.busy:
                self.held.move_to_end(conn)  # working on a request: never closed; look further
                continue
            self.evicted += 1
            self._log(logging.WARNING, "evict", "--max-connections %d reached: closing the least recently active "
                      "idle or stalled connections to admit new ones", self.max_connections)
            self.close(conn)
            return True
        return False

    def touch(self, conn: GuardedH11Protocol) -> None:
        if conn in self.held:
            self.held.move_to_end(conn)

    def close(self, conn: GuardedH11Protocol, data: bytes = b"") -> None:
        """Close ``conn`` now (after writing ``data``); its descriptor is free on the next loop turn."""
        self.held.pop(conn, None)
        conn.closed_by_server = True
        if not conn.guard_closing:
            conn.guard_closing = True
            self.closing += 1
        if data:
            conn.transport.write(data)
        conn.transport.abort()  # never waits for a client that does not read

    def time_out(self, conn: GuardedH11Protocol) -> None:
        """``conn``'s request is late: close it (408 when a request had begun) within a few loop turns."""
        self._timed_out.append(conn)
        if self._closer is None:
            self._closer = conn.loop.call_soon(self._close_timed_out)

    def _close_timed_out(self) -> None:
        for _ in range(min(CLOSES_PER_TURN, len(self._timed_out))):
            conn = self._timed_out.popleft()
            if not conn.transport.is_closing() and conn.waiting_for_request:
                self.read_timeouts += 1
                self.close(conn, self.timeout_408 if conn.partial else b"")
        loop = asyncio.get_running_loop()
        self._closer = loop.call_soon(self._close_timed_out) if self._timed_out else None

    def client_gone(self, conn: GuardedH11Protocol) -> None:
        """The client hung up in the middle of a request (before the app saw it)."""
        self.client_disconnects += 1
        peer = "%s:%d" % conn.client if conn.client else "a client"  # noqa: UP031 - uvicorn's (host, port)
        self._log_often(logging.INFO, "disconnect", "%s disconnected before its request arrived (%d bytes of it)",
                        peer, len(conn.held_bytes))

    def lost(self, conn: GuardedH11Protocol) -> None:
        self.held.pop(conn, None)
        if conn.guard_closing:
            conn.guard_closing = False
            self.closing -= 1


class GuardedSocket(socket.socket):
    """The listening socket: ``accept()`` says "nothing to accept" (``EAGAIN``, asyncio tries again on the next loop
    turn) while ``max_connections + headroom`` sockets are open."""

    guard: ConnectionGuard

    def accept(self) -> tuple[socket.socket, Any]:
        if not self.guard.may_accept():
            raise BlockingIOError(errno.EAGAIN, "at --max-connections; accepting again when sockets have closed")
        conn, addr = super().accept()
        self.guard.accepted()
        return conn, addr


def guarded_socket(sock: socket.socket, guard: ConnectionGuard) -> GuardedSocket:
    """``sock`` (bound, not yet listening) as a :class:`GuardedSocket` of ``guard``."""
    guarded = GuardedSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    guarded.guard = guard
    return guarded


def request_ready(buf: bytearray | bytes, body_limit: int) -> bool:
    """Whether the request at the start of ``buf`` may go to the HTTP parser now: its headers and its body
    (``Content-Length`` up to ``body_limit``) are all in. Anything unusual goes at once, for h11 and the app to
    judge as before: oversized headers, ``Transfer-Encoding``, ``Expect``, a repeated or odd ``Content-Length``,
    a body over ``body_limit``. Only *when* bytes reach h11 depends on this, never how they are parsed."""
    crlf, lf = buf.find(b"\r\n\r\n"), buf.find(b"\n\n")
    ends = [i + 4 for i in (crlf,) if i >= 0] + [i + 2 for i in (lf,) if i >= 0]
    if not ends:
        return len(buf) > HEADER_LIMIT
    end = min(ends)
    head = bytes(buf[:end]).lower()
    if b"\ntransfer-encoding:" in head or b"\nexpect:" in head:
        return True
    lengths = _CONTENT_LENGTH.findall(head)
    if head.count(b"\ncontent-length:") != len(lengths) or len(lengths) > 1:
        return True
    if not lengths:
        return True  # no body
    size = int(lengths[0])
    return size > body_limit or len(buf) >= end + size


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol under a :class:`ConnectionGuard` (set as the class attribute ``guard``).

    A new request's bytes are held here until the whole request is in (:func:`request_ready`), then handed to
    h11 at once: a stalled request never starts the app (which costs ~4x a stalled connection's accept and
    close), and its read timeout, headers and body together, is one timer."""

    guard: ConnectionGuard

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timer: asyncio.TimerHandle | None = None
        self.partial = False  # bytes of a request arrived since the read timer started
        self.held_bytes = bytearray()  # a request not complete yet
        self.guard_closing = False  # closed by the guard, connection_lost not run yet
        self.closed_by_server = False  # closed by the guard (evicted, timed out, refused): not the client's doing

    @property
    def busy(self) -> bool:
        """The whole request is in and its response not finished: the app works on it."""
        cycle = self.cycle
        return cycle is not None and not cycle.response_complete and not cycle.more_body

    @property
    def waiting_for_request(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.guard.admit(self):
            self.guard.close(self, self.guard.refusal)
            return
        self._start_read_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.partial and self.read_timer is not None and not self.closed_by_server:
            self.guard.client_gone(self)
        self.guard.lost(self)
        self._stop_read_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.guard.touch(self)
        if self.waiting_for_request:
            if self.read_timer is None and not self.transport.is_closing():
                self._start_read_timer()  # the first byte of a later request on a kept-alive connection
            self.partial = True
        if self.conn.their_state is h11.IDLE and not self.conn.trailing_data[0]:  # bytes of a new request
            self._unset_keepalive_if_required()
            self.held_bytes += data
            if not request_ready(self.held_bytes, self.guard.body_limit):
                return
            data, self.held_bytes = bytes(self.held_bytes), bytearray()
        super().data_received(data)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle or self.transport.is_closing():  # a request is in, or h11 refused it (400)
            self._stop_read_timer()
        if self.cycle is not cycle:
            self.cycle.scope[SCOPE_KEY] = self  # type: ignore[literal-required]  # the app asks closed_by_server

    def on_response_complete(self) -> None:
        self.guard.touch(self)
        super().on_response_complete()

    def _start_read_timer(self) -> None:
        self._stop_read_timer()
        self.partial = False
        self.read_timer = self.loop.call_later(self.guard.read_timeout, self._read_timeout)

    def _stop_read_timer(self) -> None:
        if self.read_timer is not None:
            self.read_timer.cancel()
            self.read_timer = None

    def _read_timeout(self) -> None:
        self.read_timer = None
        if not self.transport.is_closing() and self.waiting_for_request:
            self.guard.time_out(self)


def protocol_class(guard: ConnectionGuard) -> type[GuardedH11Protocol]:
    """A :class:`GuardedH11Protocol` subclass bound to ``guard`` (uvicorn's ``http=`` argument)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": guard})


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Make asyncio's "socket.accept() out of system resource" one log line per 10 s (it logs a traceback for
    every failed ``accept()``, up to ``backlog`` a second); every other error goes to the previous handler."""
    previous = loop.get_exception_handler()
    limited = RateLimitedLog(logger)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            limited(logging.ERROR, "accept", "accept() failed: %s; new connections wait (lower --max-connections "
                    "or raise the descriptor limit)", context.get("exception"))
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)

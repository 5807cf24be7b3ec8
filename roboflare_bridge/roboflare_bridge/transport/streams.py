# Copyright 2026 Roboflare developers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""
Reconnecting client of a robot's WebSocket stream (logs/ws, camera/ws, ros/topics/echo).

One :class:`StreamClient` per robot and stream: it connects with ``?token=``, hands every
frame to a callback, reconnects with capped backoff and jitter (reset after a healthy
period), detects half-open links with pings, stops retrying on a 401 handshake, and keeps
counters for diagnostics. The connection itself is :mod:`.websocket` (websockets' sans-I/O
core, each message handed over as it is read: no queue).

What consumes a stream (a mirror of a robot's topics, camera or logs; the upstream log
forwarder) has the shape of :class:`StreamConsumer`: it says which stream it needs and how
(:class:`StreamSpec`), reports its counters and releases what it holds;
:func:`open_stream` gives it its StreamClient.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
import logging
import time
from typing import Any, Awaitable, Callable, Dict, Optional, Protocol
from urllib.parse import urlsplit, urlunsplit
import weakref

from websockets.exceptions import ConnectionClosed, InvalidHandshake

from .backoff import Backoff, retry_backoff
from .credentials import Token
from .websocket import Message as Frame, open_connection, Refusal, WebSocketConnection
from .wire import stream_path

_log = logging.getLogger(__name__)


@dataclass
class StreamStats:
    """Counters of one stream (written on the loop, read by diagnostics)."""

    connected: bool = False
    connects: int = 0
    reconnects: int = 0
    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    errors: int = 0
    drops: int = 0
    unauthorized: bool = False
    idle: bool = False  # its gate is closed: nothing downstream wants it, so not connected
    last_error: str = ''
    refused: Dict[str, int] = field(default_factory=dict)  # bound -> messages refused

    def as_dict(self) -> dict:
        return asdict(self)


class _ScrubTokens(logging.Filter):
    """
    Keep the tokens out of websockets' own log lines (its DEBUG lines show the request).

    One filter for every client, knowing the tokens that clients alive hold: a filter per
    client would pile up on the shared logger as robots join and leave.
    """

    def __init__(self) -> None:
        super().__init__()
        self._tokens: 'weakref.WeakSet[Token]' = weakref.WeakSet()

    def add(self, token: Token) -> None:
        self._tokens.add(token)

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: A003 - logging's API
        message = record.getMessage()
        scrubbed = message
        for token in list(self._tokens):
            scrubbed = token.scrub(scrubbed)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


_WS_LOGGER = logging.getLogger(f'{__name__}.ws')  # websockets' lines about the streams
_SCRUB_TOKENS = _ScrubTokens()
_WS_LOGGER.addFilter(_SCRUB_TOKENS)


def handshake_status(exc: BaseException) -> Optional[int]:
    """Return the HTTP status of a refused handshake, for both websockets APIs."""
    status = getattr(exc, 'status_code', None)  # legacy InvalidStatusCode
    if status is None:
        response = getattr(exc, 'response', None)  # InvalidStatus (websockets >= 13)
        status = getattr(response, 'status_code', None)
    return status if isinstance(status, int) else None


def sent_close_code(exc: ConnectionClosed) -> Optional[int]:
    """Return the close code we sent, for both websockets APIs."""
    sent = getattr(exc, 'sent', None)  # websockets >= 10: the Close frame we sent
    return getattr(sent, 'code', None)


def websocket_url(base_url: str, robot_id: str, stream: str) -> str:
    """Return the stream's URL without the token (https -> wss, http -> ws)."""
    parts = urlsplit(base_url)
    scheme = {'https': 'wss', 'http': 'ws'}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip('/') + stream_path(robot_id, stream)
    return urlunsplit((scheme, parts.netloc, path, '', ''))


class Gate:
    """
    Whether a stream is wanted: a StreamClient with a gate is connected only while it is open.

    Open and closed from the asyncio loop (a mirror opens it while something local
    subscribes); a stream whose gate closes ends its connection cleanly and waits.
    """

    def __init__(self, is_open: bool = False) -> None:
        self.is_open = is_open
        self._changed = asyncio.Event()

    def open_if(self, is_open: bool) -> None:
        """Open the gate, or close it (wakes whoever waits for the change)."""
        if is_open != self.is_open:
            self.is_open = is_open
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    async def wait_until(self, is_open: bool) -> None:
        while self.is_open != is_open:
            await self._changed.wait()


class StreamClient:
    """
    One robot's stream, kept connected until :meth:`stop` (while its gate, if any, is open).

    Threads: everything runs on the asyncio loop; diagnostics read :attr:`stats` (plain
    values) from the executor's thread.
    """

    def __init__(self, base_url: str, robot_id: str, stream: str, token: Token, *,
                 on_frame: Callable[[Frame], None],
                 on_connect: Optional[Callable[['StreamClient'], Awaitable[None]]] = None,
                 on_disconnect: Optional[Callable[['StreamClient'], None]] = None,
                 max_frame_bytes: int = 16 << 20, frame_limit_name: str = 'max_frame_bytes',
                 compression: bool = True,
                 backoff: Optional[Backoff] = None, healthy_after_s: float = 10.0,
                 open_timeout_s: float = 10.0, ping_interval_s: float = 10.0,
                 ping_timeout_s: float = 10.0, close_timeout_s: float = 2.0,
                 gate: Optional[Gate] = None) -> None:
        self.robot_id = robot_id
        self.stream = stream
        self.url = websocket_url(base_url, robot_id, stream)  # safe to log: no token
        self.stats = StreamStats()
        self._token = token
        self._on_frame = on_frame
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._backoff = backoff or retry_backoff()
        self._healthy_after_s = healthy_after_s
        self._frame_limit = f'{frame_limit_name} ({max_frame_bytes} bytes)'
        _SCRUB_TOKENS.add(token)
        self._connect_kwargs: Dict[str, Any] = {
            'open_timeout_s': open_timeout_s, 'close_timeout_s': close_timeout_s,
            'max_size': max_frame_bytes, 'compression': compression, 'logger': _WS_LOGGER}
        self._ping_interval_s = ping_interval_s
        self._ping_timeout_s = ping_timeout_s
        self._connection: Optional[WebSocketConnection] = None
        self._gate = gate
        self._stopping = asyncio.Event()
        self.connected = asyncio.Event()

    @property
    def name(self) -> str:
        return f'{self.robot_id}/{self.stream}'

    async def run(self) -> None:
        """Connect and receive until stopped, or until the server refuses the token."""
        while not self._stopping.is_set():
            if self._gate is not None and not self._gate.is_open:
                await self._idle()
                continue
            started = time.monotonic()
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except InvalidHandshake as exc:
                status = handshake_status(exc)
                if status in (401, 403):
                    self.stats.unauthorized = True
                    self._record_error(f'handshake refused with HTTP {status}: token rejected; '
                                       'not retrying')
                    _log.error('%s: %s', self.url, self.stats.last_error)
                    return
                self._record_error(f'handshake failed: {self._token.scrub(str(exc))}')
            except ConnectionClosed as exc:
                self._record_error(f'connection closed: {self._token.scrub(str(exc))}')
            except (OSError, asyncio.TimeoutError) as exc:
                self._record_error(f'{type(exc).__name__}: {self._token.scrub(str(exc))}')
            if self._stopping.is_set():
                break
            if time.monotonic() - started >= self._healthy_after_s:
                self._backoff.reset()
            delay = self._backoff.next_delay()
            _log.info('%s: reconnecting in %.1fs (%s)', self.url, delay, self.stats.last_error)
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def _session(self) -> None:
        uri = f'{self.url}?token={self._token.reveal()}'
        connection = await open_connection(uri, self._receive, **self._connect_kwargs)
        self._connection = connection
        connection.keep_alive(self._ping_interval_s, self._ping_timeout_s)
        self.stats.connects += 1
        self.stats.reconnects = self.stats.connects - 1
        self.stats.connected = True
        self.connected.set()
        _log.info('%s: connected', self.url)
        try:
            if self._on_connect is not None:
                await self._on_connect(self)
            if self._gate is None:
                await connection.wait_closed()
            elif not await self._closed_or_unwanted(connection):
                await connection.close()  # nothing wants it any more: a clean close
                return
        finally:
            self._connection = None
            self.stats.connected = False
            self.connected.clear()
            if self._on_disconnect is not None:
                self._on_disconnect(self)
            connection.abort()  # a no-op once closed; cancelled mid-session: no socket left
        if self._stopping.is_set():
            return
        if connection.failure:
            self._record_error(connection.failure)
            return
        closed = connection.close_exc
        if sent_close_code(closed) == 1009:  # we closed it: a message broke one of our bounds
            self._refuse(connection.refused or Refusal(
                'message size', f'a frame exceeded {self._frame_limit}'))
            return
        if closed.rcvd is not None and closed.sent is not None and closed.rcvd_then_sent:
            self._record_error(f'closed by server (code {closed.rcvd.code})')
            return
        raise closed

    async def _idle(self) -> None:
        """Wait, disconnected, until the gate opens or the client stops."""
        assert self._gate is not None
        self.stats.idle = True
        opened = asyncio.ensure_future(self._gate.wait_until(True))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({opened, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            opened.cancel()
            stopping.cancel()
            self.stats.idle = False
        self._backoff.reset()  # a stream wanted again connects at once

    async def _closed_or_unwanted(self, connection: WebSocketConnection) -> bool:
        """Wait until the connection closes (True) or its gate closes (False)."""
        assert self._gate is not None
        closed = asyncio.ensure_future(connection.wait_closed())
        unwanted = asyncio.ensure_future(self._gate.wait_until(False))
        try:
            await asyncio.wait({closed, unwanted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            unwanted.cancel()
        if closed.done():
            return True
        closed.cancel()
        return False

    def _receive(self, frame: Frame) -> None:
        self.stats.frames_in += 1
        self.stats.bytes_in += len(frame)
        try:
            self._on_frame(frame)
        except Exception as exc:  # noqa: BLE001 - a bad frame must not end the stream
            self.stats.drops += 1
            self._record_error(f'frame handler: {type(exc).__name__}: {exc}')
            _log.exception('%s: frame handler failed', self.url)

    async def send(self, frame: Frame) -> bool:
        """Send a frame if connected; return False if it could not be sent."""
        connection = self._connection
        if connection is None:
            return False
        try:
            await connection.send(frame)
        except ConnectionClosed:
            return False
        self.stats.frames_out += 1
        self.stats.bytes_out += len(frame)
        return True

    async def stop(self) -> None:
        """Stop reconnecting and close the connection cleanly."""
        self._stopping.set()
        connection = self._connection
        if connection is not None:
            await connection.close()

    def _refuse(self, refusal: Refusal) -> None:
        """Count a message refused for breaking a bound, name it, say it once per bound."""
        self.stats.drops += 1
        first = refusal.bound not in self.stats.refused
        self.stats.refused[refusal.bound] = self.stats.refused.get(refusal.bound, 0) + 1
        self._record_error(f'{refusal.detail}; reconnecting')
        if first:
            _log.warning('%s: %s; the stream reconnects (counted from now on, not logged)',
                         self.url, self.stats.last_error)

    def _record_error(self, message: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = self._token.scrub(message)[:300]


@dataclass(frozen=True)
class StreamSpec:
    """The stream a consumer needs, its handlers, and StreamClient options (limits)."""

    stream: str
    on_frame: Callable[[Frame], None]
    on_connect: Optional[Callable[[StreamClient], Awaitable[None]]] = None
    on_disconnect: Optional[Callable[[StreamClient], None]] = None
    options: Dict[str, Any] = field(default_factory=dict)
    gate: Optional[Gate] = None  # connected only while it is open (None: always)


class StreamConsumer(Protocol):
    """What handles the frames of one robot stream (its handlers run on the asyncio loop)."""

    def stream_spec(self) -> StreamSpec:
        """Return the stream this consumer needs (asked once, before it connects)."""

    def diagnostic_values(self) -> Dict[str, Any]:
        """Return its counters for /diagnostics (executor thread: no iteration of live state)."""

    def stop(self) -> None:
        """Release what it holds (asyncio loop, after its stream stopped)."""


def open_stream(spec: StreamSpec, base_url: str, robot_id: str, token: Token,
                ping_interval_s: float, ping_timeout_s: float,
                compression: bool = True) -> StreamClient:
    """Return the (not yet running) StreamClient that a consumer's spec asks for."""
    options = {'compression': compression, **spec.options}  # a consumer's choice wins
    return StreamClient(base_url, robot_id, spec.stream, token, on_frame=spec.on_frame,
                        on_connect=spec.on_connect, on_disconnect=spec.on_disconnect,
                        ping_interval_s=ping_interval_s, ping_timeout_s=ping_timeout_s,
                        gate=spec.gate, **options)


__all__ = ['Frame', 'Gate', 'handshake_status', 'open_stream', 'sent_close_code', 'StreamClient',
           'StreamConsumer', 'StreamSpec', 'StreamStats', 'websocket_url']

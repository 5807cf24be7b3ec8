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
A WebSocket client connection: websockets' sans-I/O protocol driven by an asyncio Protocol.

websockets' own asyncio clients (the legacy one of 10.4-12, the new one of >= 13) parse
frames in one task and hand each message to the reader's task through a queue: task
switches, futures and buffer copies for every message, a third of the bridge's CPU per
camera frame on websockets 10.4. Here the socket's bytes go straight into websockets'
protocol in ``data_received`` and each complete message is handed to a callback right
there. Nothing is queued: the socket is not read while a message is handled, so what one
connection holds is one read and one message.

The opening and closing handshakes, control frames, fragmented messages and anything
malformed go through websockets' protocol (the same sans-I/O core from 10.4 to 17). The
frames that are nearly all of a stream, whole text or binary messages, are taken straight
out of each read (``WebSocketConnection._receive_frames``): websockets' parser spends 4.5-7.5
us on each of them (a generator per frame, a Frame object, on 10.4 a dataclasses.replace per
compressed frame), the direct path 1-1.7 us, inflating with the decompressor websockets
negotiated. Both see the stream cut at the same frame boundaries, so order, size limits and
close codes are websockets' (a test compares the two on random streams and cuts).

The direct path and the ChunkReader under it use websockets internals no release promises
to keep (the protocol's reader, parser and deflate decoder). :func:`direct_frames` checks
them once against websockets' own parser on a known stream; if anything is missing or
differs, every connection uses websockets' parser alone, and so it does with
``ROBOFLARE_FAST_PATHS=0`` or ``ws_direct`` in that list (fast_paths.py).

Whatever the frames, what one connection holds is bounded: a message's payload by
``max_size`` (websockets counts it across fragments), its fragments by
:data:`MAX_FRAGMENTS`, and what assembling them costs by :data:`FRAGMENT_COST` per fragment
on top of the payload, within ``max_size`` too; websockets' parser is fed at most
:data:`PARSER_SLICE` bytes at once, so the frames it parses in one go are bounded as well.
Past a bound the connection ends with close code 1009 and :attr:`WebSocketConnection.refused`
says which bound.

Thread: everything here runs on the event loop that opened the connection.
"""

from __future__ import annotations

import asyncio
import base64
from collections import deque
from dataclasses import dataclass
import logging
import os
import random
import socket
import ssl
from typing import Callable, Deque, Dict, FrozenSet, Generator, List, Optional, Tuple, Union
from urllib.parse import unquote, urlsplit
import urllib.request
import zlib

from websockets.exceptions import ConnectionClosed, InvalidState, PayloadTooBig, ProtocolError
from websockets.extensions.permessage_deflate import (
    enable_client_permessage_deflate, PerMessageDeflate, ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.streams import StreamReader
from websockets.uri import parse_uri

from ..common.fast_paths import switched_off

try:  # websockets' own client, for one-shot exchanges (rviz_config's topic list, tests)
    from websockets.asyncio.client import connect as websockets_connect
except ImportError:  # websockets 10.4 - 12: the legacy client has the same coroutine API
    from websockets.client import (  # type: ignore[no-redef,attr-defined]
        connect as websockets_connect,
    )

try:  # websockets >= 11
    from websockets.client import ClientProtocol  # type: ignore[attr-defined]
    from websockets.protocol import State
    from websockets.server import ServerProtocol  # type: ignore[attr-defined]
except ImportError:  # websockets 10.4 (Ubuntu 24.04): the same core under its first names
    from websockets.client import ClientConnection as ClientProtocol  # type: ignore
    from websockets.connection import State  # type: ignore[no-redef]
    from websockets.server import ServerConnection as ServerProtocol  # type: ignore

Message = Union[str, bytes]
BytesLike = Union[bytes, bytearray, memoryview]  # a frame's data, as websockets types it

_log = logging.getLogger(__name__)

MAX_FRAGMENTS = 4096  # of one message, as websockets 17's own client allows
FRAGMENT_COST = 64  # bytes of the message's budget (max_size) each fragment costs beyond its data
PARSER_SLICE = 16 << 10  # at most this much goes into websockets' parser at once

_DATA_OPCODES = (Opcode.TEXT, Opcode.BINARY)

# A frame's first byte when it is a whole message: FIN, RSV1 when compressed, the opcode.
_WHOLE_MESSAGES = frozenset({0x81, 0x82})
_WHOLE_COMPRESSED_MESSAGES = frozenset({0xC1, 0xC2})
_MASKED = 0x80  # in the second byte; a server's frames never are (RFC 6455 5.1)
_DEFLATE_TAIL = b'\x00\x00\xff\xff'  # RFC 7692 7.2.2: what the sender took off each message
# Under this many compressed bytes every websockets release (10.4 to 17) inflates a message
# as the direct path does: the tail appended, one call (the self-test checks it, on a
# message whose tail inflates to content). From it on, releases differ (17 inflates in two
# calls and refuses a message whose tail inflates to content): websockets' decoder does it.
INFLATED_BY_WEBSOCKETS_FROM = 2044
_INCOMPLETE = (-1, -1)


@dataclass(frozen=True)
class Refusal:
    """A message this side refused for breaking a bound of its own (close code 1009)."""

    bound: str  # 'fragments' (MAX_FRAGMENTS) or 'assembly' (FRAGMENT_COST within max_size)
    detail: str


def frame_extent(data: bytes, pos: int) -> Tuple[int, int]:
    """
    Return where the payload of the frame at ``data[pos]`` starts and ends.

    The end may lie beyond ``data``; ``(-1, -1)`` while the header itself is incomplete.
    """
    if len(data) - pos < 2:
        return _INCOMPLETE
    second = data[pos + 1]
    length = second & 0x7F
    start = pos + 2
    if length >= 126:
        width = 2 if length == 126 else 8
        length = int.from_bytes(data[start:start + width], 'big')
        start += width
    if second & _MASKED:
        start += 4
    if start > len(data):
        return _INCOMPLETE
    return start, start + length


class ChunkReader(StreamReader):
    """
    websockets' StreamReader, with frames read out of the received chunks themselves.

    The stock reader appends every chunk to one bytearray and slices each read out of it as
    a bytearray, which the bridge then turned into bytes: three copies of each byte of a
    camera frame. Here a read inside one chunk is one slice of it, as bytes (a whole chunk is
    not copied at all), and only a read across chunks joins them. Line reads (the opening
    handshake's response) stay the stock reader's, on its buffer: the unread bytes move to
    wherever the next read looks for them.

    With ``set_aside``, the bytes that came after the handshake's response (the first
    frames) are not read: they wait in :attr:`after_handshake` for the connection to take,
    and the parser waits at a frame boundary.
    """

    def __init__(self, set_aside: bool = False) -> None:
        super().__init__()
        self.set_aside = set_aside
        self.after_handshake = b''
        self._head = b''  # the chunk being read, from _start on; then _tail's, in order
        self._start = 0
        self._tail: Deque[bytes] = deque()
        self._tail_size = 0
        self._in_chunks = False  # whether feed_data appends to the chunks or to self.buffer

    # The reads return bytes where websockets' own return bytearray: its parser takes either.
    def feed_data(self, data: bytes) -> None:  # type: ignore[override]
        if not self._in_chunks:
            super().feed_data(data)
        elif self.eof:
            raise EOFError('stream ended')
        elif data:
            if self._start == len(self._head) and not self._tail:
                self._head, self._start = bytes(data), 0
            else:
                self._tail.append(bytes(data))
                self._tail_size += len(data)

    def read_exact(  # type: ignore[override]
            self, n: int) -> Generator[None, None, bytes]:
        if self._start + n > len(self._head):  # most reads are inside the chunk being read
            if not self._in_chunks:
                self._use_chunks()
            while self._unread() < n:
                if self.eof:
                    raise EOFError(
                        f'stream ends after {self._unread()} bytes, expected {n} bytes')
                yield
        return self._take(n)

    def at_eof(self) -> Generator[None, None, bool]:
        if not self._in_chunks:
            self._use_chunks()
        while True:
            if self._unread():
                return False
            if self.eof:
                return True
            yield

    def read_line(  # type: ignore[override]
            self, m: int, *args: type) -> Generator[None, None, Union[bytes, bytearray]]:
        self._use_buffer()
        return (yield from super().read_line(m, *args))

    def read_to_eof(  # type: ignore[override]
            self, m: int, *args: type) -> Generator[None, None, Union[bytes, bytearray]]:
        self._use_buffer()
        return (yield from super().read_to_eof(m, *args))

    def discard(self) -> None:
        super().discard()
        self._head, self._start = b'', 0
        self._tail.clear()
        self._tail_size = 0

    def _unread(self) -> int:
        return len(self._head) - self._start + self._tail_size

    def _use_chunks(self) -> None:
        self._in_chunks = True
        if self.buffer:  # bytes that came with the handshake's response
            if self.set_aside:
                self.after_handshake += self.buffer
            else:
                self._head, self._start = bytes(self.buffer), 0
            del self.buffer[:]

    def _use_buffer(self) -> None:
        if self._in_chunks:
            self._in_chunks = False
            self.buffer += self._take(self._unread())
            self._head, self._start = b'', 0

    def _take(self, n: int) -> bytes:
        """Return the next ``n`` bytes, which have arrived, whichever chunks hold them."""
        parts = []
        while self._start + n > len(self._head):
            parts.append(self._head[self._start:])
            n -= len(self._head) - self._start
            self._head, self._start = self._tail.popleft(), 0
            self._tail_size -= len(self._head)
        start = self._start
        self._start = start + n
        parts.append(self._head[start:start + n])
        return b''.join(parts)  # one part is returned as it is: no copy


def message_limit(protocol: ClientProtocol) -> Optional[int]:
    """Return the largest message ``protocol`` accepts, in bytes (None: no limit)."""
    # websockets >= 17 takes max_size as an int or a (message, fragment) tuple and keeps the
    # message's limit as max_message_size; earlier versions keep max_size itself.
    limit = getattr(protocol, 'max_message_size', protocol.__dict__.get('max_size'))
    if limit is not None and not isinstance(limit, int):
        raise TypeError(f'unexpected message size limit {limit!r}')
    return limit


def read_in_chunks(protocol: ClientProtocol, set_aside: bool = False) -> ClientProtocol:
    """Give a new protocol a ChunkReader; its parser restarts on it (before any data)."""
    protocol.reader = ChunkReader(set_aside)
    protocol.parser = protocol.parse()
    next(protocol.parser)
    return protocol


class WebSocketConnection(asyncio.Protocol):
    """
    One open WebSocket connection; open it with :func:`open_connection`.

    ``on_message`` gets each complete message (``str`` for text, ``bytes`` for binary) as
    soon as its last byte is read. It must not raise: asyncio would end the connection.
    Whole messages skip websockets' parser when ``protocol`` reads with a set-aside
    ChunkReader (``read_in_chunks(protocol, set_aside=True)``); the size limit is the
    protocol's own (``max_size``), which that path enforces too. ``loop`` is for a
    connection driven by hand (the self-test), not running on a loop.
    """

    def __init__(self, protocol: ClientProtocol, on_message: Callable[[Message], None],
                 close_timeout_s: float,
                 loop: Optional[asyncio.AbstractEventLoop] = None) -> None:
        self.protocol = protocol
        self.failure = ''  # why this side gave up on the link (a keepalive timeout)
        self.refused: Optional[Refusal] = None  # a bound of this side a message broke
        self._on_message = on_message
        self._close_timeout_s = close_timeout_s
        self._loop = loop or asyncio.get_running_loop()
        self._max_size = message_limit(protocol)
        self._transport: Optional[asyncio.Transport] = None
        self._opened: asyncio.Future[None] = self._loop.create_future()
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._fragmented: Optional[Opcode] = None  # the opcode of the message being assembled
        self._assembly = bytearray()  # its fragments' data so far
        self._fragments = 0  # and how many fragments that was
        self._close_timer: Optional[asyncio.TimerHandle] = None
        self._keepalive: Optional[asyncio.Task[None]] = None
        self._pongs: Dict[bytes, asyncio.Future[None]] = {}
        self._writable: Optional[asyncio.Future[None]] = None
        self._eof = False
        # The direct frame path (_receive_frames), once the handshake has succeeded
        self._direct = False
        self._direct_headers: FrozenSet[int] = frozenset()
        self._deflate: Optional[PerMessageDeflate] = None  # and its decompressor:
        self._inflater: Optional['zlib._Decompress'] = None
        self._owed = 0  # bytes websockets still needs of the frame it is reading
        self._header_part = b''  # a frame header cut by the read, held for the next
        self._parts: List[memoryview] = []  # a whole message cut by the read: what came
        self._parts_first = 0  # its first byte
        self._missing = 0  # and how many bytes of it are still to come

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._flush()  # the handshake request

    def data_received(self, data: bytes) -> None:
        if not self._direct:
            data = self._to_websockets_until_direct(data)
        if data:
            try:
                self._receive_frames(data)
            except Exception as exc:  # noqa: BLE001 - websockets changed under the direct path
                self._direct_path_failed(exc)
                return
        self._flush()

    def eof_received(self) -> None:
        self._receive_eof()
        self._flush()
        # Returning None lets the transport close itself.

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._receive_eof()  # settles the protocol's state when no EOF came
        if self._close_timer is not None:
            self._close_timer.cancel()
        if self._keepalive is not None:
            self._keepalive.cancel()
        for waiter in self._pongs.values():
            if not waiter.done():
                waiter.cancel()
        if not self._opened.done():
            self._opened.set_exception(
                self.protocol.handshake_exc or exc
                or ConnectionError('connection closed during the opening handshake'))
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # What the owner calls

    @property
    def close_exc(self) -> ConnectionClosed:
        """How the connection ended, as websockets says it (after :meth:`wait_closed`)."""
        return self.protocol.close_exc

    async def send(self, message: Message) -> None:
        """Send a message; raise ConnectionClosed once the connection is closing."""
        try:
            if isinstance(message, str):
                self.protocol.send_text(message.encode())
            else:
                self.protocol.send_binary(message)
        except InvalidState:
            raise self.protocol.close_exc from None
        self._flush()
        if self._writable is not None:  # the socket's buffer is full: wait until it drains
            await asyncio.shield(self._writable)

    async def ping(self, timeout_s: float) -> bool:
        """Send a ping; return whether its pong came within ``timeout_s``."""
        payload = os.urandom(4)
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._pongs[payload] = waiter
        try:
            self.protocol.send_ping(payload)
            self._flush()
            await asyncio.wait_for(waiter, timeout_s)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            self._pongs.pop(payload, None)

    def keep_alive(self, interval_s: float, timeout_s: float) -> None:
        """Ping every ``interval_s``; a pong missing for ``timeout_s`` ends the link."""
        if interval_s > 0:
            self._keepalive = self._loop.create_task(self._keep_alive(interval_s, timeout_s))

    async def close(self, code: int = 1000) -> None:
        """Start the closing handshake and wait until the connection is closed."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code)
            self._flush()
        elif self._transport is not None and not self._closed.done():
            self._transport.abort()
        await self.wait_closed()

    def abort(self) -> None:
        """Drop the connection without a closing handshake."""
        if self._transport is not None:
            self._transport.abort()

    async def wait_opened(self) -> None:
        await self._opened

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    # Internals

    async def _keep_alive(self, interval_s: float, timeout_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            if self.protocol.state is not State.OPEN:
                return
            if not await self.ping(timeout_s):
                self.failure = f'no pong within {timeout_s:g}s: the link is down'
                self.protocol.fail(1011, 'keepalive ping timeout')
                self._flush()
                self.abort()  # a half-open link would not carry the close handshake
                return

    def _to_websockets(self, data: bytes) -> None:
        # In slices: a read of tiny frames would otherwise be parsed into one list of events
        # (a 256 KiB read of 2-byte frames: 131,072 Frame objects) before any bound is checked.
        if len(data) <= PARSER_SLICE:
            self._parse(data)
            return
        for start in range(0, len(data), PARSER_SLICE):
            self._parse(data[start:start + PARSER_SLICE])

    def _parse(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        self._handle_events()

    def _to_websockets_until_direct(self, data: bytes) -> bytes:
        """Parse ``data`` with websockets; return what is left if the direct path starts."""
        for start in range(0, len(data), PARSER_SLICE):
            self._parse(data[start:start + PARSER_SLICE])
            reader = self.protocol.reader
            if isinstance(reader, ChunkReader) and reader.after_handshake:  # the first frames
                after, reader.after_handshake = reader.after_handshake, b''
                if self._direct:
                    return after + data[start + PARSER_SLICE:]
                self._parse(after)
        return b''

    def _direct_path_failed(self, exc: Exception) -> None:
        """End this connection and read every later one with websockets' parser alone."""
        global _direct_chosen
        if _direct_chosen:
            _direct_chosen = False
            _log.error('the WebSocket direct frame path failed (%s: %s); websockets parser '
                       'reads every stream from now on', type(exc).__name__, exc)
        self.failure = f'direct frame path failed ({type(exc).__name__}); reconnecting'
        self.abort()

    def _start_direct_frames(self) -> None:
        """Take whole messages out of the reads from now on, if the reader and extensions allow."""
        reader, extensions = self.protocol.reader, self.protocol.extensions
        if not (isinstance(reader, ChunkReader) and reader.set_aside):
            return  # websockets' parser may have read into the first frames: it keeps them
        if not extensions:
            self._direct_headers = _WHOLE_MESSAGES
        elif len(extensions) == 1 and isinstance(extensions[0], PerMessageDeflate):
            self._direct_headers = _WHOLE_MESSAGES
            if not extensions[0].remote_no_context_takeover:  # else websockets inflates
                self._deflate = extensions[0]
                self._inflater = getattr(extensions[0], 'decoder', None)
            if self._inflater is not None:
                self._direct_headers = _WHOLE_MESSAGES | _WHOLE_COMPRESSED_MESSAGES
        else:  # an extension this path does not know
            return
        self._direct = True

    def _receive_frames(self, data: bytes) -> None:
        """
        Deliver the whole messages in ``data`` directly; hand every other frame to websockets.

        websockets gets whole frames, or the start of one and then (``_owed``) its rest, so
        its parser is always at a frame boundary when this path reads a frame. A message cut
        by the end of a read is kept as views of the reads, joined once when it is complete.
        Once the connection is closing, or fails, everything goes to websockets.
        """
        if self._header_part:
            data, self._header_part = self._header_part + data, b''
        size = len(data)
        pos = 0
        if self._owed:
            pos = min(self._owed, size)
            self._owed -= pos
            self._to_websockets(data[:pos])
        elif self._missing:
            pos = min(self._missing, size)
            self._missing -= pos
            self._parts.append(memoryview(data)[:pos])
            if self._missing:
                return
            payload, self._parts = b''.join(self._parts), []
            self._take_message(self._parts_first, payload)
        direct_headers, max_size = self._direct_headers, self._max_size
        while pos < size:
            if self.protocol.state is not State.OPEN:
                self._direct = False
                self._to_websockets(data[pos:])
                return
            start, end = frame_extent(data, pos)
            if start < 0:
                self._header_part = data[pos:]  # under 14 bytes
                return
            first = data[pos]
            if (first not in direct_headers or data[pos + 1] & _MASKED
                    or self._fragmented is not None
                    or (max_size is not None and end - start > max_size)):
                stop = min(end, size)
                self._owed = end - stop
                self._to_websockets(data[pos:stop])
                pos = stop
            elif end > size:
                self._parts, self._parts_first = [memoryview(data)[start:]], first
                self._missing = end - size
                return
            else:
                self._take_message(first, data[start:end])
                pos = end

    def _take_message(self, first: int, payload: bytes) -> None:
        """Deliver a whole message read directly, inflated if its RSV1 bit says so."""
        opcode = Opcode.TEXT if first & 1 else Opcode.BINARY
        if first & 0x40:
            inflated = self._inflate(opcode, payload)
            if inflated is None:
                return  # the connection has failed: the loop hands the rest over
            payload = inflated
        self._deliver(opcode, payload)

    def _inflate(self, opcode: Opcode, payload: bytes) -> Optional[bytes]:
        """Decompress one whole message; on failure end the connection as websockets does."""
        assert self._deflate is not None and self._inflater is not None
        if len(payload) >= INFLATED_BY_WEBSOCKETS_FROM:
            try:
                frame = self._deflate.decode(Frame(opcode, payload, True, True),
                                             max_size=self._max_size)
            except PayloadTooBig as exc:
                self.protocol.fail(1009, str(exc)[:120])
                return None
            except ProtocolError as exc:
                self.protocol.fail(1002, str(exc)[:120])
                return None
            return bytes(frame.data)
        try:
            data = self._inflater.decompress(payload + _DEFLATE_TAIL, self._max_size or 0)
        except zlib.error:
            self.protocol.fail(1002, 'decompression failed')
            return None
        if self._inflater.unconsumed_tail:
            self.protocol.fail(1009, f'message over {self._max_size} bytes once inflated')
            return None
        return data

    def _receive_eof(self) -> None:
        if not self._eof:  # websockets 10.4 raises on a second EOF
            self._eof = True
            self.protocol.receive_eof()

    def _handle_events(self) -> None:
        # After a failure (_deliver, _assemble) the rest is dropped: websockets parsed it
        # before then.
        for event in self.protocol.events_received():
            if not isinstance(event, Frame):  # the handshake's response
                if self._opened.done():  # the opening timed out meanwhile
                    continue
                if self.protocol.handshake_exc is not None:
                    self._opened.set_exception(self.protocol.handshake_exc)
                else:
                    self._opened.set_result(None)
                    self._start_direct_frames()
                continue
            opcode = event.opcode
            if opcode in _DATA_OPCODES:
                if event.fin:
                    if not self._deliver(opcode, event.data):
                        return
                else:
                    self._fragmented = opcode
                    if not self._assemble(event.data):
                        return
            elif opcode is Opcode.CONT and self._fragmented is not None:
                if not self._assemble(event.data):
                    return
                if event.fin:
                    opcode, data = self._fragmented, self._assembly
                    self._fragmented, self._assembly, self._fragments = None, bytearray(), 0
                    if not self._deliver(opcode, data):
                        return
            elif opcode is Opcode.PONG:
                waiter = self._pongs.get(bytes(event.data))
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    def _assemble(self, data: BytesLike) -> bool:
        """Add a fragment to the message being assembled; False if that broke a bound."""
        self._fragments += 1
        self._assembly += data
        if self._fragments > MAX_FRAGMENTS:
            return self._refuse(Refusal(
                'fragments', f'a message in over {MAX_FRAGMENTS} fragments'))
        cost = len(self._assembly) + FRAGMENT_COST * self._fragments
        if self._max_size is not None and cost > self._max_size:
            return self._refuse(Refusal(
                'assembly', f'a message in {self._fragments} fragments over {self._max_size} '
                f'bytes, counting {FRAGMENT_COST} bytes per fragment'))
        return True

    def _refuse(self, refusal: Refusal) -> bool:
        """End the connection with 1009 for breaking one of this side's bounds; False."""
        self.refused = refusal
        self._fragmented, self._assembly, self._fragments = None, bytearray(), 0
        self.protocol.fail(1009, refusal.detail[:120])  # a close reason fits in 123 bytes
        return False

    def _deliver(self, opcode: Opcode, data: BytesLike) -> bool:
        """Hand a message over; False if it failed the connection instead (not UTF-8)."""
        if opcode is Opcode.BINARY:
            # A slice of a read, or the assembly of fragments (copied once, to bytes).
            self._on_message(data if type(data) is bytes else bytes(data))
            return True
        try:
            text = str(data, 'utf-8')
        except UnicodeDecodeError as exc:  # RFC 6455 7.1.7: not text, end the connection
            self.protocol.fail(1007, f'{exc.reason} at position {exc.start}')
            return False
        self._on_message(text)
        return True

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        for data in self.protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
            else:  # TLS has no half-close
                transport.close()
        if self._close_timer is None and self.protocol.close_expected():
            self._close_timer = self._loop.call_later(self._close_timeout_s, transport.abort)


class RecordingTransport(asyncio.Transport):
    """A transport that keeps what a connection writes: for driving one by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: Union[bytes, bytearray, memoryview]) -> None:
        self.written += data

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.closed = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


_direct_chosen: Optional[bool] = None
_SILENT = logging.getLogger(__name__ + '.self_test')  # the self-test's server says nothing
_SILENT.setLevel(logging.CRITICAL + 1)
_SILENT.propagate = False


def direct_frames() -> bool:
    """Return whether connections take whole messages out of the reads; tested once."""
    global _direct_chosen
    if _direct_chosen is None:
        if switched_off('ws_direct'):
            _direct_chosen, said = False, 'off (ROBOFLARE_FAST_PATHS)'
        else:
            difference = direct_path_difference()
            _direct_chosen = not difference
            said = 'on' if not difference else (
                f'off: {difference}; websockets parser reads every frame')
        _log.info('WebSocket direct frame path %s', said)
    return _direct_chosen


def direct_path_difference() -> str:
    """
    Read a known stream with the direct path and with websockets' parser; say what differs.

    Plain and compressed, each with text and binary messages, a message cut across reads,
    one fragmented around a ping, and a closing handshake; compressed, a message whose tail
    inflates to content. Returns '' when both read the same messages and send the same
    frames back, and the direct path did read them.
    """
    loop = asyncio.new_event_loop()  # never run: the connections are driven by hand
    try:
        for compression in (False, True):
            got = _read_known_stream(loop, compression, direct=True)
            expected = _read_known_stream(loop, compression, direct=False)
            if got != expected:
                return f'it reads a {"compressed" if compression else "plain"} stream differently'
        return ''
    except Exception as exc:  # noqa: BLE001 - whatever is missing: use websockets' parser
        return f'{type(exc).__name__}: {exc}'
    finally:
        loop.close()


def _read_known_stream(loop: asyncio.AbstractEventLoop, compression: bool,
                       direct: bool) -> Tuple[List[Message], List[Tuple[Opcode, bytes]], bool]:
    messages: List[Message] = []
    protocol = ClientProtocol(
        parse_uri('ws://robot/stream'), max_size=1 << 16,
        extensions=enable_client_permessage_deflate(None) if compression else None)
    if direct:
        read_in_chunks(protocol, set_aside=True)
    protocol.send_request(protocol.connect())
    connection = WebSocketConnection(protocol, messages.append, 1.0, loop=loop)
    transport = RecordingTransport()
    connection.connection_made(transport)
    server = ServerProtocol(
        extensions=[ServerPerMessageDeflateFactory()] if compression else None, max_size=None,
        logger=_SILENT)
    server.receive_data(bytes(transport.written))
    request = server.events_received()[0]
    assert isinstance(request, Request)
    server.send_response(server.accept(request))
    response = b''.join(server.data_to_send())
    server.send_text('{"op": "topics", "topics": []}'.encode())
    server.send_binary(bytes(range(256)) * 40)
    server.send_text('über '.encode() * 300)  # cut across reads below
    server.send_text(b'{"frag', fin=False)
    server.send_ping(b'between')
    server.send_continuation(b'ment": 1}', fin=True)
    server.send_binary(b'')
    server.send_binary(random.Random(0).randbytes(5000))  # inflated by websockets' decoder
    frames = b''.join(server.data_to_send())
    if compression:  # a stored block whose content is the tail the client appends
        frames += bytes([0xC2, 5]) + b'\x00\x04\x00\xfb\xff'
    server.send_close(1000, 'done')
    frames += b''.join(server.data_to_send())
    stream = response + frames
    # The first frames come with the handshake's response; then cuts inside frames.
    cuts = [len(response) + 40, len(response) + len(frames) // 2, len(stream) - 30, len(stream)]
    start = 0
    for end in cuts:
        connection.data_received(stream[start:end])
        start = end
    used_direct = connection._direct and (connection._inflater is not None) == compression
    connection.eof_received()
    connection.connection_lost(None)
    written = bytes(transport.written)
    peer = ServerProtocol(state=State.OPEN, max_size=None, logger=_SILENT)  # what the client sent
    peer.receive_data(written[written.index(b'\r\n\r\n') + 4:])
    sent = [(frame.opcode, bytes(frame.data[:2] if frame.opcode is Opcode.CLOSE else frame.data))
            for frame in peer.events_received() if isinstance(frame, Frame)]
    return messages, sent, used_direct if direct else True


async def open_connection(url: str, on_message: Callable[[Message], None], *,
                          compression: bool = True, max_size: Optional[int] = 1 << 20,
                          open_timeout_s: float = 10.0, close_timeout_s: float = 2.0,
                          logger: Optional[logging.Logger] = None,
                          ssl_context: Optional[ssl.SSLContext] = None) -> WebSocketConnection:
    """
    Connect to ``url`` (ws:// or wss://) and complete the opening handshake.

    An HTTP proxy named by the environment (``https_proxy`` for wss, ``http_proxy`` for ws,
    else ``all_proxy``; ``no_proxy`` honoured) is tunnelled through with CONNECT, as httpx
    does for the API.
    """
    uri = parse_uri(url)
    protocol = ClientProtocol(
        uri, extensions=enable_client_permessage_deflate(None) if compression else None,
        max_size=max_size, logger=logger)
    if direct_frames():
        read_in_chunks(protocol, set_aside=True)
    protocol.send_request(protocol.connect())
    if uri.secure and ssl_context is None:
        ssl_context = ssl.create_default_context()
    loop = asyncio.get_running_loop()

    async def handshake() -> WebSocketConnection:
        def connected() -> WebSocketConnection:
            return WebSocketConnection(protocol, on_message, close_timeout_s)

        tls = ssl_context if uri.secure else None
        proxy = environment_proxy(uri.host, uri.port, uri.secure)
        if proxy is None:
            _, connection = await loop.create_connection(connected, uri.host, uri.port, ssl=tls)
        else:
            sock = await tunnel(proxy, uri.host, uri.port)
            _, connection = await loop.create_connection(
                connected, sock=sock, ssl=tls, server_hostname=uri.host if tls else None)
        try:
            await connection.wait_opened()
        except BaseException:
            connection.abort()
            raise
        return connection

    return await asyncio.wait_for(handshake(), open_timeout_s)


def environment_proxy(host: str, port: int, secure: bool) -> Optional[str]:
    """Return the HTTP proxy URL the environment names for this server, if any."""
    if urllib.request.proxy_bypass(f'{host}:{port}'):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get('https' if secure else 'http') or proxies.get('all')


async def tunnel(proxy_url: str, host: str, port: int) -> socket.socket:
    """Return a socket connected to ``host:port`` through an HTTP proxy's CONNECT."""
    proxy = urlsplit(proxy_url if '://' in proxy_url else f'http://{proxy_url}')
    where = f'{proxy.hostname}:{proxy.port or 80}'  # never the credentials, in any message
    if proxy.scheme != 'http':
        raise ConnectionError(f'proxy {where}: only http:// proxies are supported for streams')
    target = f'[{host}]:{port}' if ':' in host else f'{host}:{port}'
    request = f'CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n'
    if proxy.username is not None:
        credentials = f'{unquote(proxy.username)}:{unquote(proxy.password or "")}'
        basic = base64.b64encode(credentials.encode()).decode()
        request += f'Proxy-Authorization: Basic {basic}\r\n'
    loop = asyncio.get_running_loop()
    family, kind, proto, _, address = (await loop.getaddrinfo(
        proxy.hostname, proxy.port or 80, type=socket.SOCK_STREAM))[0]
    sock = socket.socket(family, kind, proto)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, address)
        await loop.sock_sendall(sock, (request + '\r\n').encode())
        response = b''
        while b'\r\n\r\n' not in response:  # the proxy says nothing more before we speak
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk or len(response) > 65536:
                raise ConnectionError(f'proxy {where}: no answer to CONNECT')
            response += chunk
        status_line = response.split(b'\r\n', 1)[0].decode('latin-1')
        status = status_line.split(' ', 2)[1] if status_line.startswith('HTTP/') else ''
        if not (status.isdigit() and 200 <= int(status) < 300):
            raise ConnectionError(f'proxy {where} refused CONNECT: {status_line[:100]}')
    except BaseException:
        sock.close()
        raise
    return sock


__all__ = ['ChunkReader', 'direct_frames', 'direct_path_difference', 'FRAGMENT_COST',
           'frame_extent', 'MAX_FRAGMENTS', 'Message', 'message_limit', 'open_connection',
           'PARSER_SLICE', 'read_in_chunks', 'RecordingTransport', 'Refusal',
           'WebSocketConnection', 'websockets_connect']

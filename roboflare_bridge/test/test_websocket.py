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
The WebSocket connection against a server whose every frame the test chooses.

The server is websockets' own sans-I/O server on a real loopback socket (port 0): the
emulator's aiohttp server never fragments a message, sends invalid UTF-8 or stops reading,
and those are what the connection must get right.
"""

import asyncio
from dataclasses import dataclass, field
import logging
from pathlib import Path
import random
import re
import shutil
import ssl
import subprocess
from typing import List, Optional
import zlib

import pytest
from roboflare_bridge.common.fast_paths import ENVIRONMENT
from roboflare_bridge.transport import websocket
from roboflare_bridge.transport.streams import handshake_status
from roboflare_bridge.transport.websocket import (
    ChunkReader, direct_frames, direct_path_difference, FRAGMENT_COST, MAX_FRAGMENTS,
    message_limit, open_connection, PARSER_SLICE, read_in_chunks, RecordingTransport,
    WebSocketConnection,
)
import websockets
from websockets.extensions.permessage_deflate import (
    enable_client_permessage_deflate, enable_server_permessage_deflate, PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader
from websockets.uri import parse_uri

try:  # websockets >= 11
    from websockets.client import ClientProtocol as StockClient
    from websockets.protocol import State
    from websockets.server import ServerProtocol
except ImportError:  # websockets 10.4
    from websockets.client import ClientConnection as StockClient  # type: ignore
    from websockets.connection import State  # type: ignore[no-redef]
    from websockets.server import ServerConnection as ServerProtocol  # type: ignore


class FrameServer(asyncio.Protocol):
    """One accepted connection: frames received are kept, frames to send are the test's."""

    def __init__(self, accepted: 'asyncio.Queue[FrameServer]') -> None:
        self.protocol = ServerProtocol()
        self.received: List[Frame] = []
        self.changed = asyncio.Event()
        self.transport: Optional[asyncio.Transport] = None
        self._accepted = accepted

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Frame):
                self.received.append(event)
            else:  # the handshake request
                self.protocol.send_response(self.protocol.accept(event))
                self._accepted.put_nowait(self)
        self.flush()
        self.changed.set()

    def eof_received(self):
        self.protocol.receive_eof()
        self.flush()

    def send(self, opcode: Opcode, data: bytes, fin: bool = True) -> None:
        send = {Opcode.TEXT: self.protocol.send_text, Opcode.BINARY: self.protocol.send_binary,
                Opcode.CONT: self.protocol.send_continuation, Opcode.PING: self.protocol.send_ping}
        if opcode is Opcode.PING:
            send[opcode](data)
        else:
            send[opcode](data, fin=fin)
        self.flush()

    def flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.transport.write(data)
            else:
                self.transport.write_eof()

    async def wait_for(self, predicate, timeout=5.0) -> None:
        async def wait():
            while not predicate():
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(wait(), timeout)


class Inbox(list):
    """Messages handed over by the connection, with a wait for the next ones."""

    def __init__(self):
        super().__init__()
        self.arrived = asyncio.Event()

    def __call__(self, message):
        self.append(message)
        self.arrived.set()

    async def wait_for(self, count, timeout=5.0):
        async def wait():
            while len(self) < count:
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(wait(), timeout)


async def serve(tls: Optional[ssl.SSLContext] = None):
    accepted: asyncio.Queue = asyncio.Queue()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FrameServer(accepted), '127.0.0.1', 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    url = f'wss://localhost:{port}/stream' if tls else f'ws://127.0.0.1:{port}/stream'
    return server, url, accepted


def test_fragments_are_joined_and_messages_handed_over_in_order_as_they_arrive():
    async def scenario():
        server, url, accepted = await serve()
        messages = Inbox()
        connection = await open_connection(url, messages, compression=False)
        peer = await asyncio.wait_for(accepted.get(), 5)
        peer.send(Opcode.TEXT, 'héllo '.encode(), fin=False)
        peer.send(Opcode.PING, b'mid')  # control frames may come between fragments
        peer.send(Opcode.CONT, b'wor', fin=False)
        peer.send(Opcode.CONT, b'ld', fin=True)
        peer.send(Opcode.BINARY, b'\x00\x01', fin=False)
        peer.send(Opcode.CONT, b'\xff', fin=True)
        peer.send(Opcode.TEXT, b'{}')
        await peer.wait_for(lambda: any(f.opcode is Opcode.PONG for f in peer.received))
        await messages.wait_for(3)
        await connection.close()
        server.close()
        return messages, peer.received
    messages, received = asyncio.run(scenario())
    assert messages == ['héllo world', b'\x00\x01\xff', '{}']
    assert [(f.opcode, f.data) for f in received if f.opcode is Opcode.PONG] == [
        (Opcode.PONG, b'mid')]
    assert received[-1].opcode is Opcode.CLOSE


def test_a_message_over_the_limit_ends_the_connection_with_1009_even_in_fragments():
    async def scenario():
        server, url, accepted = await serve()
        messages: list = []
        connection = await open_connection(url, messages.append, compression=False,
                                           max_size=1000, close_timeout_s=0.5)
        peer = await asyncio.wait_for(accepted.get(), 5)
        peer.send(Opcode.BINARY, bytes(600))
        peer.send(Opcode.BINARY, bytes(600), fin=False)
        peer.send(Opcode.CONT, bytes(600), fin=True)
        await asyncio.wait_for(connection.wait_closed(), 5)
        server.close()
        return messages, connection.close_exc
    messages, closed = asyncio.run(scenario())
    assert messages == [bytes(600)]  # the one within the limit, nothing of the other
    assert closed.sent.code == 1009


def test_text_that_is_not_utf8_ends_the_connection_with_1007_after_what_came_before():
    async def scenario():
        server, url, accepted = await serve()
        messages: list = []
        connection = await open_connection(url, messages.append, compression=False,
                                           close_timeout_s=0.5)
        peer = await asyncio.wait_for(accepted.get(), 5)
        peer.send(Opcode.TEXT, b'fine')
        peer.send(Opcode.TEXT, b'\xff\xfe')
        await asyncio.wait_for(connection.wait_closed(), 5)
        server.close()
        return messages, connection.close_exc
    messages, closed = asyncio.run(scenario())
    assert messages == ['fine'] and closed.sent.code == 1007


def test_a_peer_that_stops_reading_makes_send_wait_instead_of_buffering():
    async def scenario():
        server, url, accepted = await serve()
        connection = await open_connection(url, lambda message: None, compression=False)
        peer = await asyncio.wait_for(accepted.get(), 5)
        peer.transport.pause_reading()
        chunk = bytes(1 << 20)
        sent = 0
        while True:  # socket buffers fill, then the transport's, then send waits
            pending = asyncio.ensure_future(connection.send(chunk))
            done, _ = await asyncio.wait([pending], timeout=0.5)
            if not done:
                break
            sent += 1
            assert sent < 64, 'send never waited: the connection buffers without bound'
        buffered = connection._transport.get_write_buffer_size()
        peer.transport.resume_reading()
        await asyncio.wait_for(pending, 10)
        await peer.wait_for(lambda: sum(len(f.data) for f in peer.received
                                        if f.opcode is Opcode.BINARY) == (sent + 1) << 20, 10)
        await connection.close()
        server.close()
        return buffered
    buffered = asyncio.run(scenario())
    assert buffered <= 2 << 20  # the transport's high-water mark plus the message being sent


def test_a_peer_that_stops_answering_pings_ends_the_link():
    async def scenario():
        server, url, accepted = await serve()
        connection = await open_connection(url, lambda message: None, compression=False)
        peer = await asyncio.wait_for(accepted.get(), 5)
        connection.keep_alive(0.05, 0.2)
        await peer.wait_for(lambda: any(f.opcode is Opcode.PING for f in peer.received))
        peer.transport.pause_reading()  # pings are no longer read, so never answered
        await asyncio.wait_for(connection.wait_closed(), 5)
        server.close()
        return connection.failure
    assert asyncio.run(scenario()) == 'no pong within 0.2s: the link is down'


@pytest.mark.parametrize('status', [403, 503])
def test_a_refused_handshake_raises_with_its_status(status):
    class Refusing(asyncio.Protocol):
        def connection_made(self, transport):
            transport.write(f'HTTP/1.1 {status} No\r\nContent-Length: 0\r\n\r\n'.encode())

    async def scenario():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Refusing, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        try:
            await open_connection(f'ws://127.0.0.1:{port}/', print, open_timeout_s=5)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            return exc
        finally:
            server.close()
    assert handshake_status(asyncio.run(scenario())) == status


async def receive_one(server, url, accepted, text: bytes, **options) -> Inbox:
    """Connect, have the server's peer send one text message, close both; return the inbox."""
    messages = Inbox()
    connection = await open_connection(url, messages, compression=False, **options)
    peer = await asyncio.wait_for(accepted.get(), 5)
    peer.send(Opcode.TEXT, text)
    await messages.wait_for(1)
    await connection.close()
    server.close()
    return messages


class ConnectProxy:
    """An HTTP CONNECT proxy on port 0: pipes bytes both ways, keeps each request's head."""

    def __init__(self, status=200):
        self.status = status
        self.requests = []

    async def start(self):
        self.server = await asyncio.start_server(self._handle, '127.0.0.1', 0)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader, writer):
        head = (await reader.readuntil(b'\r\n\r\n')).decode()
        self.requests.append(head)
        if self.status != 200:
            writer.write(f'HTTP/1.1 {self.status} No\r\nContent-Length: 0\r\n\r\n'.encode())
            writer.close()
            return
        host, port = head.split()[1].rsplit(':', 1)
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        writer.write(b'HTTP/1.1 200 Connection established\r\n\r\n')

        async def pipe(source, sink):
            try:
                while True:
                    data = await source.read(65536)
                    if not data:
                        break
                    sink.write(data)
                    await sink.drain()
            finally:
                sink.close()
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer),
                             return_exceptions=True)


@pytest.fixture
def proxy_environment(monkeypatch):
    for name in ('http_proxy', 'https_proxy', 'all_proxy', 'no_proxy'):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


@pytest.mark.parametrize('bypassed', [False, True])
def test_streams_go_through_the_environments_http_proxy_unless_bypassed(proxy_environment,
                                                                        bypassed):
    async def scenario():
        proxy = ConnectProxy()
        proxy_port = await proxy.start()
        proxy_environment.setenv('http_proxy', f'http://robot:s%40cret@127.0.0.1:{proxy_port}')
        if bypassed:
            proxy_environment.setenv('no_proxy', '127.0.0.1')
        server, url, accepted = await serve()
        messages = await receive_one(server, url, accepted, b'through')
        proxy.server.close()
        return proxy.requests, url, messages
    requests, url, messages = asyncio.run(scenario())
    assert messages == ['through']
    if bypassed:
        assert requests == []
    else:
        target = url.split('/')[2]
        assert requests[0].startswith(f'CONNECT {target} HTTP/1.1\r\n'), requests
        assert 'Proxy-Authorization: Basic cm9ib3Q6c0BjcmV0\r\n' in requests[0]  # robot:s@cret


def test_a_proxy_refusing_connect_is_a_connection_error_without_its_credentials(
        proxy_environment):
    async def scenario():
        proxy = ConnectProxy(status=407)
        proxy_port = await proxy.start()
        proxy_environment.setenv('https_proxy', f'http://robot:s3cret@127.0.0.1:{proxy_port}')
        try:
            await open_connection('wss://robots.example:443/stream', print, open_timeout_s=5)
        except ConnectionError as exc:
            return str(exc), proxy.requests
        finally:
            proxy.server.close()
    message, requests = asyncio.run(scenario())
    assert requests[0].startswith('CONNECT robots.example:443 HTTP/1.1')
    assert '407' in message and 's3cret' not in message and 'robot' not in message


def test_wss_through_a_proxy_verifies_the_servers_certificate_for_its_name(proxy_environment,
                                                                           tmp_path):
    if shutil.which('openssl') is None:
        pytest.skip('openssl is needed to make a certificate')
    key, cert = tmp_path / 'key.pem', tmp_path / 'cert.pem'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
                    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost',
                    '-keyout', str(key), '-out', str(cert)], check=True, capture_output=True)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    async def scenario():
        proxy = ConnectProxy()
        proxy_environment.setenv('https_proxy', f'http://127.0.0.1:{await proxy.start()}')
        server, url, accepted = await serve(server_tls)
        messages = await receive_one(server, url, accepted, b'over tls',
                                     ssl_context=ssl.create_default_context(cafile=cert))
        proxy.server.close()
        return proxy.requests, messages
    requests, messages = asyncio.run(scenario())
    assert messages == ['over tls'] and requests[0].startswith('CONNECT localhost:')


# -- ChunkReader against websockets' own StreamReader --------------------------------------

def outcomes(reader, ops, chunks):
    """Run reads in order, feeding chunks ahead as told and (then EOF) whenever one waits."""
    chunks, results = list(chunks), []
    for name, args, ahead in ops:
        for _ in range(min(ahead, len(chunks))):
            reader.feed_data(chunks.pop(0))
        if name == 'discard':
            reader.discard()
            continue
        read = getattr(reader, name)(*args)
        while True:
            try:
                next(read)
            except StopIteration as done:
                value = done.value
                results.append(bytes(value) if isinstance(value, (bytes, bytearray)) else value)
                break
            except (EOFError, RuntimeError) as exc:
                results.append((type(exc).__name__, str(exc)))
                break
            if chunks:
                reader.feed_data(chunks.pop(0))
            else:
                reader.feed_eof()
    return results


@pytest.mark.parametrize('seed', range(100))
def test_the_chunk_reader_reads_what_websockets_reader_reads_however_data_is_cut(seed):
    rng = random.Random(seed)
    stream = bytes(rng.choice(b'ab\n\x00\xff') for _ in range(rng.randrange(0, 400)))
    cuts = sorted(rng.sample(range(len(stream) + 1), min(len(stream) + 1, rng.randrange(1, 40))))
    chunks = [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]  # some empty
    ops = []
    for _ in range(rng.randrange(1, 30)):
        kind, ahead = rng.random(), rng.choice([0, 0, 1, 3])  # chunks fed before the read
        if kind < 0.55:
            ops.append(('read_exact', (rng.choice([0, 1, 2, 4, 8, rng.randrange(60)]),), ahead))
        elif kind < 0.7:
            ops.append(('at_eof', (), ahead))
        elif kind < 0.9:
            ops.append(('read_line', (rng.randrange(1, 40),), ahead))
        elif kind < 0.95:
            ops.append(('discard', (), ahead))
        else:
            ops.append(('read_to_eof', (rng.randrange(1, 500),), ahead))
    expected = outcomes(StreamReader(), ops, chunks)
    got = outcomes(ChunkReader(), ops, chunks)
    assert got == expected
    assert all(type(v) is bytes for v in got if isinstance(v, (bytes, bytearray)))


def server_stream(request, seed):
    """Return the server's bytes for a client's request: the response, then varied frames."""
    rng = random.Random(seed)
    server = ServerProtocol(extensions=enable_server_permessage_deflate(None), max_size=None)
    server.send_response(server.accept(request))
    for index in range(40):
        size = rng.choice([0, 1, 125, 126, 65535, 65536, 42_000])
        payload = bytes(rng.randrange(256) for _ in range(64)) * (size // 64 + 1)
        kind = rng.random()
        if kind < 0.4:
            server.send_binary(payload[:size])
        elif kind < 0.7:
            server.send_text(('ü' * (size // 2)).encode())
        elif kind < 0.85:
            server.send_binary(payload[:size], fin=False)
            server.send_ping(b'p%d' % index)
            server.send_continuation(payload[:7], fin=True)
        else:
            server.send_ping(b'p%d' % index)
    server.send_close(1000, 'done')
    return b''.join(server.data_to_send())


@pytest.mark.parametrize('seed', range(8))
def test_a_protocol_on_a_chunk_reader_parses_what_the_stock_one_does(seed):
    def run(protocol):
        request = protocol.connect()
        protocol.send_request(request)
        data = server_stream(request, seed)
        rng = random.Random(seed)  # the same cuts for both
        cuts = sorted(rng.sample(range(1, len(data)), 300))
        events = []
        for a, b in zip([0] + cuts, cuts + [len(data)]):
            protocol.receive_data(data[a:b])
            events += [(e.opcode, e.fin, e.data) if isinstance(e, Frame) else e.status_code
                       for e in protocol.events_received()]
        return events, b''.join(protocol.data_to_send())

    def client():
        return StockClient(parse_uri('ws://robot/stream'),
                           extensions=enable_client_permessage_deflate(None))
    (stock, stock_sent), (chunked, chunked_sent) = run(client()), run(read_in_chunks(client()))
    assert chunked == stock
    assert stock[0] == 101 and len(stock) > 40 and stock[-1][0] is Opcode.CLOSE
    assert len(chunked_sent) == len(stock_sent)  # pongs and the close reply (masked)


# -- The direct frame path against websockets' own parser ----------------------------------
#
# The reference is websockets' ClientProtocol with websockets' own reader, and assembly as
# the bridge specifies it, in plain code: fragments joined, at most MAX_FRAGMENTS of them
# costing FRAGMENT_COST bytes each within max_size, text strictly UTF-8. The bridge's
# connection reads with its ChunkReader and takes whole messages straight out of the reads.

MAX_SIZE = 200_000  # over every message but the endings that test it
COMPRESSIONS = ['deflate', 'deflate per message', 'plain']  # the server's choice


def raw_frame(first: int, payload: bytes, masked: bool = False) -> bytes:
    """Return a frame as a server could send it, its first byte (FIN, RSV, opcode) as given."""
    size = len(payload)
    flag = 0x80 if masked else 0
    if size < 126:
        head = bytes([first, size | flag])
    elif size < 65536:
        head = bytes([first, 126 | flag]) + size.to_bytes(2, 'big')
    else:
        head = bytes([first, 127 | flag]) + size.to_bytes(8, 'big')
    if masked:
        key = b'\x01\x02\x03\x04'
        head += key
        payload = bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))
    return head + payload


class Deflater:
    """The server's side of permessage-deflate, for frames the test writes by hand."""

    def __init__(self, compression: str) -> None:
        self.per_message = compression == 'deflate per message'  # no context takeover
        self._deflater = zlib.compressobj(wbits=-15)

    def __call__(self, data: bytes) -> bytes:
        if self.per_message:
            self._deflater = zlib.compressobj(wbits=-15)
        return (self._deflater.compress(data) + self._deflater.flush(zlib.Z_SYNC_FLUSH))[:-4]


def server_extensions(compression: str) -> Optional[list]:
    if compression == 'plain':
        return None
    return [ServerPerMessageDeflateFactory(  # a 15-bit window, as aiohttp's
        server_no_context_takeover=compression == 'deflate per message')]


def client_protocol(compression: str, max_size: Optional[int]) -> StockClient:
    return StockClient(parse_uri('ws://robot/stream'), max_size=max_size,
                       extensions=None if compression == 'plain'
                       else enable_client_permessage_deflate(None))


def handshake_response(request: bytes, compression: str) -> bytes:
    server = ServerProtocol(extensions=server_extensions(compression))
    server.receive_data(request)
    server.send_response(server.accept(server.events_received()[0]))
    return b''.join(server.data_to_send())


def frames_sent(written: bytes) -> List[tuple]:
    """Return what a client sent after its request: (opcode, data), a close by its code."""
    server = ServerProtocol(state=State.OPEN, max_size=None)
    server.receive_data(written[written.index(b'\r\n\r\n') + 4:])
    return [(frame.opcode, frame.data[:2] if frame.opcode is Opcode.CLOSE else frame.data)
            for frame in server.events_received()]


def close_codes(protocol: StockClient) -> tuple:
    return (protocol.close_rcvd and protocol.close_rcvd.code,
            protocol.close_sent and protocol.close_sent.code)


@dataclass
class Outcome:
    """What a client did with a stream: messages, frames sent back, close codes."""

    messages: list
    sent: List[tuple]
    codes: tuple
    parsed_past_failure: bool = field(default=False, compare=False)  # the known difference


class ReferenceReader:
    """websockets' own parser and reader, with the bridge's assembly rules in plain code."""

    def __init__(self, compression: str, max_size: Optional[int]) -> None:
        self.protocol = client_protocol(compression, max_size)
        self.protocol.send_request(self.protocol.connect())
        self.request = b''.join(self.protocol.data_to_send())
        self.max_size = max_size
        self.messages: list = []
        self.assembly_failure = 0  # the close code this side's assembly ended with
        self.parsed_past_failure = False
        self._opcode: Optional[Opcode] = None
        self._parts: List[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        frames = [e for e in self.protocol.events_received() if isinstance(e, Frame)]
        for index, frame in enumerate(frames):
            if self.assembly_failure:
                return
            code = self._take(frame)
            if code:
                # websockets parsed the read past this frame before assembly saw it
                self.parsed_past_failure = (index + 1 < len(frames)
                                            or self.protocol.close_sent is not None)
                self.assembly_failure = code
                self.protocol.fail(code, 'refused')

    def end(self) -> Outcome:
        self.protocol.receive_eof()
        written = self.request + b''.join(self.protocol.data_to_send())
        return Outcome(self.messages, frames_sent(written), close_codes(self.protocol))

    def _take(self, frame: Frame) -> int:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            if frame.fin:
                return self._deliver(frame.opcode, frame.data)
            self._opcode, self._parts, self._size = frame.opcode, [], 0
        elif frame.opcode is not Opcode.CONT or self._opcode is None:
            return 0
        self._parts.append(frame.data)
        self._size += len(frame.data) + FRAGMENT_COST
        if len(self._parts) > MAX_FRAGMENTS or (
                self.max_size is not None and self._size > self.max_size):
            return 1009
        if not frame.fin:
            return 0
        opcode, self._opcode = self._opcode, None
        return self._deliver(opcode, b''.join(self._parts))

    def _deliver(self, opcode: Opcode, data: bytes) -> int:
        if opcode is Opcode.BINARY:
            self.messages.append(bytes(data))
            return 0
        try:
            self.messages.append(bytes(data).decode())
        except UnicodeDecodeError:
            return 1007
        return 0


class BridgeReader:
    """The bridge's connection, its direct path on or off, driven by hand."""

    def __init__(self, compression: str, max_size: Optional[int], direct: bool = True) -> None:
        protocol = client_protocol(compression, max_size)
        if direct:
            read_in_chunks(protocol, set_aside=True)
        self.parsed = 0  # frames websockets' parser produced
        events_received = protocol.events_received

        def count_frames():
            events = events_received()
            self.parsed += sum(isinstance(event, Frame) for event in events)
            return events
        protocol.events_received = count_frames
        protocol.send_request(protocol.connect())
        self.loop = asyncio.new_event_loop()  # never run: the connection is driven by hand
        self.messages: list = []
        self.connection = WebSocketConnection(protocol, self.messages.append, 1.0,
                                              loop=self.loop)
        self.transport = RecordingTransport()
        self.connection.connection_made(self.transport)
        self.request = bytes(self.transport.written)

    def feed(self, data: bytes) -> None:
        self.connection.data_received(data)

    def end(self) -> Outcome:
        self.connection.eof_received()
        self.connection.connection_lost(None)
        self.loop.close()
        return Outcome(self.messages, frames_sent(bytes(self.transport.written)),
                       close_codes(self.connection.protocol))


def cut(frames: bytes, seed: Optional[int]) -> List[bytes]:
    """
    Return ``frames`` as the reads that bring them.

    Seeded: a few large reads or many small ones, some of a few bytes. Without a seed, all in
    one read (which the handshake's response comes with).
    """
    if seed is None or len(frames) < 2:
        return [frames]
    rng = random.Random(seed)
    count = min(len(frames) - 1, rng.choice([2, 3, 60]))
    cuts = set(rng.sample(range(1, len(frames)), count))
    cuts |= {c for c in rng.sample(range(1, 300), 20) if c < len(frames)}
    cuts = sorted(cuts)
    return [frames[a:b] for a, b in zip([0] + cuts, cuts + [len(frames)])]


def read(reader, frames: bytes, seed: Optional[int], compression: str):
    reads = cut(frames, seed)
    reader.feed(handshake_response(reader.request, compression) + reads[0])
    for data in reads[1:]:
        reader.feed(data)
    return reader.end()


# websockets parses the whole of a read before the connection sees any of its frames, so
# when assembly refuses a message (not UTF-8, a bound), websockets may already have answered
# a ping further on in that read, or failed on a later frame with another close code. The
# direct path reads frame by frame and stops at the first failure. The one difference the
# comparison allows, and only where the reference did parse past the failure.
PARSES_THE_REST_OF_THE_READ = 'websockets parses the rest of a read before assembly refuses'


def assert_read_alike(frames: bytes, compression: str, seed: Optional[int],
                      max_size: Optional[int] = MAX_SIZE) -> Outcome:
    """Read ``frames`` both ways; assert the same outcome (one known difference allowed)."""
    reference = ReferenceReader(compression, max_size)
    expected = read(reference, frames, seed, compression)
    got = read(BridgeReader(compression, max_size), frames, seed, compression)
    if reference.parsed_past_failure:  # PARSES_THE_REST_OF_THE_READ
        assert got.messages == expected.messages
        assert got.codes[1] == reference.assembly_failure
        got.parsed_past_failure = True
    else:
        assert got == expected
    return got


# How a stream ends ('eof': it just stops), the last ones only with or without deflate
ENDINGS = ['close', 'eof', 'invalid utf-8', 'too big', 'masked', 'rsv2', 'unknown opcode',
           'a message inside a fragmented one']
DEFLATE_ENDINGS = ['inflates too big', 'bad deflate']
PLAIN_ENDINGS = ['rsv1 without deflate']


def frame_stream(rng: random.Random, compression: str, max_size: int, ending: str,
                 sizes=(0, 1, 125, 126, 127, 1000, 65535, 65536, 42_000)) -> bytes:
    """Return the server's frames after the handshake: varied messages, then the ending named."""
    compressed = compression != 'plain'
    deflate = Deflater(compression)

    def message(opcode: int, data: bytes) -> bytes:
        deflated = compressed and rng.random() < 0.8
        payload = deflate(data) if deflated else data
        if rng.random() < 0.8:
            return raw_frame(0x80 | (0x40 if deflated else 0) | opcode, payload)
        cuts = sorted(rng.randrange(len(payload) + 1) for _ in range(2))  # some fragments empty
        parts = [payload[:cuts[0]], payload[cuts[0]:cuts[1]], payload[cuts[1]:]]
        return (raw_frame((0x40 if deflated else 0) | opcode, parts[0])
                + raw_frame(0x89, b'between')  # a ping between fragments
                + raw_frame(0x00, parts[1]) + raw_frame(0x80, parts[2]))

    out = []
    for index in range(rng.randrange(5, 40)):
        size = rng.choice(sizes)
        kind = rng.random()
        if kind < 0.45:
            out.append(message(0x1, ('ü{"i": %d}' % index * (size // 10 + 1))[:size].encode()))
        elif kind < 0.85:
            out.append(message(0x2, rng.randbytes(size)))
        elif kind < 0.95:
            out.append(raw_frame(0x89, b'ping %d' % index))
        else:
            out.append(raw_frame(0x8A, b'unasked pong'))
    if ending == 'close':
        out.append(raw_frame(0x88, (1000).to_bytes(2, 'big') + b'bye'))
    elif ending == 'invalid utf-8':
        out.append(message(0x1, b'ok \xff\xfe'))
    elif ending == 'too big':
        out.append(message(0x2, bytes(max_size + 1)))
    elif ending == 'inflates too big':
        out.append(raw_frame(0xC2, deflate(bytes(max_size + 1))))
    elif ending == 'bad deflate':
        out.append(raw_frame(0xC1, b'\xff\x00 not deflate'))
    elif ending == 'masked':
        out.append(raw_frame(0x81, b'masked', masked=True))
    elif ending == 'rsv2':
        out.append(raw_frame(0xA1, b'rsv2'))
    elif ending == 'unknown opcode':
        out.append(raw_frame(0x83, b'?'))
    elif ending == 'a message inside a fragmented one':
        out.append(raw_frame(0x01, b'first fragment') + raw_frame(0x81, b'not a continuation'))
    elif ending == 'rsv1 without deflate':
        out.append(raw_frame(0xC1, b'rsv1'))
    out.append(raw_frame(0x81, b'after the ending') + raw_frame(0x89, b'after'))
    return b''.join(out)


@pytest.mark.parametrize('compression', COMPRESSIONS)
@pytest.mark.parametrize('seed', range(30))  # each ending three times
def test_the_direct_frame_path_does_what_websockets_parser_does(seed, compression):
    endings = ENDINGS + (PLAIN_ENDINGS if compression == 'plain' else DEFLATE_ENDINGS)
    ending = endings[seed % len(endings)]
    frames = frame_stream(random.Random(seed), compression, MAX_SIZE, ending)
    assert_read_alike(frames, compression, seed)
    reader = BridgeReader(compression, MAX_SIZE)
    read(reader, frames, seed, compression)
    reference = BridgeReader(compression, MAX_SIZE, direct=False)
    read(reference, frames, seed, compression)
    if compression != 'deflate per message':  # where websockets inflates each message
        assert reader.parsed < reference.parsed  # the direct path took frames itself


@pytest.mark.parametrize('compression', ['deflate', 'plain'])
def test_whole_messages_read_at_once_never_reach_websockets_parser(compression):
    deflate = Deflater(compression)
    texts = ['{"op": "message", "seq": %d}' % index for index in range(100)]
    frames = b''
    for index, text in enumerate(texts):
        opcode = 0x81 if index % 2 else 0x82
        data = text.encode()
        if compression == 'deflate':  # the same context across messages, as negotiated
            data = deflate(data)
        frames += raw_frame(opcode | (0x40 if compression == 'deflate' else 0), data)
    reader = BridgeReader(compression, MAX_SIZE)
    outcome = read(reader, frames, None, compression)
    assert outcome.messages == [text if index % 2 else text.encode()
                                for index, text in enumerate(texts)]
    assert reader.parsed == 0 and outcome.codes == (None, None)  # ended without a close


@pytest.mark.parametrize('direct', [True, False])
def test_websockets_parser_is_fed_bounded_slices_of_a_read(direct):
    # 65,536 empty pings in one read: websockets would parse them into one list of events.
    pings = raw_frame(0x89, b'') * 65536
    reader = BridgeReader('plain', MAX_SIZE, direct)
    batches: List[int] = []
    events_received = reader.connection.protocol.events_received

    def batch():
        events = events_received()
        batches.append(len(events))
        return events
    reader.connection.protocol.events_received = batch
    outcome = read(reader, pings, None, 'plain')
    assert len(outcome.sent) == 65536 and max(batches) <= PARSER_SLICE // 2


def test_the_size_limit_is_the_protocols_own():
    for limit in (None, 1, 1 << 20):
        assert message_limit(client_protocol('plain', limit)) == limit
    if hasattr(StockClient(parse_uri('ws://robot/'), max_size=(10, 5)), 'max_message_size'):
        # websockets >= 17: a (message, fragment) pair; the message's limit is the one
        assert message_limit(StockClient(parse_uri('ws://robot/'), max_size=(10, 5))) == 10


# -- The direct path's self-test and its fallback ----------------------------------------

@pytest.fixture
def untested(monkeypatch):
    """Put the direct path back as before its first use: tested on the next connection."""
    monkeypatch.setattr(websocket, '_direct_chosen', None)
    monkeypatch.delenv(ENVIRONMENT, raising=False)
    return monkeypatch


def test_the_direct_path_passes_its_self_test_on_this_websockets(untested, caplog):
    assert direct_path_difference() == ''
    with caplog.at_level(logging.INFO, logger='roboflare_bridge.transport.websocket'):
        assert direct_frames() and direct_frames()
    assert caplog.text.count('WebSocket direct frame path on') == 1  # said once


BREAKAGES = {
    # a websockets release that renames the parser's entry point
    'no parse()': lambda patch: patch.delattr(StockClient, 'parse'),
    # one whose deflate extension keeps its decompressor elsewhere
    'no decoder': lambda patch: patch.setattr(
        PerMessageDeflate, '__getattribute__', lambda self, name: (
            (_ for _ in ()).throw(AttributeError(name)) if name == 'decoder'
            else object.__getattribute__(self, name))),
    # a direct path that would read the frames wrongly
    'wrong inflation': lambda patch: patch.setattr(
        WebSocketConnection, '_inflate', lambda self, payload: b'?'),
    'wrong cut': lambda patch: patch.setattr(websocket, 'frame_extent',
                                             lambda data, pos: (pos + 2, pos + 3)),
}


@pytest.mark.parametrize('breakage', sorted(BREAKAGES))
def test_websockets_parser_reads_every_stream_when_the_self_test_fails(untested, caplog,
                                                                       breakage):
    BREAKAGES[breakage](untested)
    with caplog.at_level(logging.INFO, logger='roboflare_bridge.transport.websocket'):
        assert not direct_frames()
    assert 'WebSocket direct frame path off: ' in caplog.text
    untested.undo()  # websockets as it is: connections read with its parser alone

    async def scenario():
        server, url, accepted = await serve()
        messages = Inbox()
        connection = await open_connection(url, messages, compression=False)
        peer = await asyncio.wait_for(accepted.get(), 5)
        peer.send(Opcode.TEXT, b'still read')
        await messages.wait_for(1)
        await connection.close()
        server.close()
        return messages, connection
    websocket._direct_chosen = False
    try:
        messages, connection = asyncio.run(scenario())
    finally:
        websocket._direct_chosen = None
    assert messages == ['still read'] and not isinstance(connection.protocol.reader,
                                                         ChunkReader)


@pytest.mark.parametrize('setting', ['0', 'cdr_publish,ws_direct'])
def test_the_environment_turns_the_direct_path_off(untested, setting):
    untested.setenv(ENVIRONMENT, setting)
    assert not direct_frames()


def test_a_direct_path_failing_at_run_time_ends_the_connection_and_is_off_for_good(untested):
    assert direct_frames()
    reader = BridgeReader('plain', MAX_SIZE)

    def broken(self, first, payload):
        raise AttributeError('a websockets internal went away')
    untested.setattr(WebSocketConnection, '_take_message', broken)
    reader.feed(handshake_response(reader.request, 'plain') + raw_frame(0x81, b'x'))
    assert reader.transport.closed and 'direct frame path failed' in reader.connection.failure
    assert not direct_frames()


def test_the_installed_websockets_is_in_the_tested_range_the_package_declares():
    package = (Path(__file__).resolve().parents[1] / 'package.xml').read_text()
    low, high = re.search(r'version_gte="([\d.]+)" version_lt="([\d.]+)">python3-websockets<',
                          package).groups()
    requirements = Path(__file__).resolve().parents[2] / 'requirements' / 'runtime.txt'
    if requirements.exists():  # a repository checkout: the set-up installs within the same
        assert f'websockets>={low},<{high}' in requirements.read_text().split()

    def version(text):
        return tuple(int(part) for part in re.findall(r'\d+', text)[:2])
    assert version(low) <= version(websockets.__version__) < version(high)

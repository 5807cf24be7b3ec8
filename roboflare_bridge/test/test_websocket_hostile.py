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
A hostile server against the stream client.

A corpus of malformed frames, seeded mutations, decompression bombs and fragment floods.

Each stream is read by the bridge's connection (its direct frame path) and by the reference
(websockets' own parser and reader, the bridge's assembly rules in plain code,
test_websocket); they must do the same. Bombs and floods are held to bounds of memory
(tracemalloc's peak, the stream itself excluded) and time.
"""

import asyncio
from collections import Counter
import random
import time
import tracemalloc
from typing import Callable, Dict, List, Tuple
import zlib

import pytest
from roboflare_bridge.transport.websocket import (
    FRAGMENT_COST, MAX_FRAGMENTS, open_connection, PARSER_SLICE,
)
from test_websocket import (
    assert_read_alike, BridgeReader, Deflater, frame_stream, handshake_response, Inbox,
    MAX_SIZE, raw_frame, read, ServerProtocol,
)
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame


def close_frame(code: int, reason: bytes = b'') -> bytes:
    return raw_frame(0x88, code.to_bytes(2, 'big') + reason)


def length_frame(first: int, payload: bytes, form: int) -> bytes:
    """Return a frame whose length is in the 7-bit, 16-bit (126) or 64-bit (127) form."""
    size = len(payload)
    if form == 126:
        return bytes([first, 126]) + size.to_bytes(2, 'big') + payload
    if form == 127:
        return bytes([first, 127]) + size.to_bytes(8, 'big') + payload
    return bytes([first, size]) + payload


# Each case: the frames it sends (given the stream's deflater), the close code the client
# must send (None: the stream is valid and read to its end; ANY: only compared), and whether
# it needs deflate negotiated, plain, or either.
Case = Tuple[Callable[[Deflater], bytes], object, str]
EITHER, DEFLATE, PLAIN = 'either', 'deflate', 'plain'
ANY = 'any'
CASES: Dict[str, Case] = {
    'masked text': (lambda d: raw_frame(0x81, b'masked', masked=True), 1002, EITHER),
    'masked compressed': (lambda d: raw_frame(0xC1, d(b'masked'), masked=True), 1002, DEFLATE),
    'rsv1 without deflate': (lambda d: raw_frame(0xC1, b'rsv1'), 1002, PLAIN),
    'rsv2 on text': (lambda d: raw_frame(0xA1, b'rsv2'), 1002, EITHER),
    'rsv3 on binary': (lambda d: raw_frame(0x92, b'rsv3'), 1002, EITHER),
    'rsv1 on a ping': (lambda d: raw_frame(0xC9, b'ping'), 1002, EITHER),
    'rsv2 on a close': (lambda d: raw_frame(0xA8, (1000).to_bytes(2, 'big')), 1002, EITHER),
    'rsv1 on a continuation': (
        lambda d: raw_frame(0x41, d(b'start')) + raw_frame(0xC0, d(b'rest')), 1002, DEFLATE),
    'rsv2 on a continuation': (
        lambda d: raw_frame(0x01, b'start') + raw_frame(0xA0, b'rest'), 1002, EITHER),
    **{f'reserved opcode {opcode:#x}': ((lambda o: lambda d: raw_frame(0x80 | o, b'?'))(opcode),
                                        1002, EITHER)
       for opcode in (0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF)},
    '64-bit length, top bit set': (
        lambda d: bytes([0x82, 127]) + ((1 << 63) | 5).to_bytes(8, 'big') + b'12345', 1009,
        EITHER),
    'a length at the limit': (lambda d: raw_frame(0x82, bytes(MAX_SIZE)), None, EITHER),
    'a length just over the limit': (lambda d: raw_frame(0x82, bytes(MAX_SIZE + 1)), 1009,
                                     EITHER),
    'text at the limit': (lambda d: raw_frame(0x81, b'a' * MAX_SIZE), None, EITHER),
    'inflating to the limit': (lambda d: raw_frame(0xC2, d(bytes(MAX_SIZE))), None, DEFLATE),
    'inflating just over the limit': (lambda d: raw_frame(0xC2, d(bytes(MAX_SIZE + 1))), 1009,
                                      DEFLATE),
    'fragments to the limit': (
        lambda d: (raw_frame(0x02, bytes(MAX_SIZE - 2 * FRAGMENT_COST - 1))
                   + raw_frame(0x80, b'x')), None, EITHER),
    'fragments just over the limit': (
        lambda d: (raw_frame(0x02, bytes(MAX_SIZE - 2 * FRAGMENT_COST - 1))
                   + raw_frame(0x80, b'xy')), 1009, EITHER),
    'non-minimal 16-bit length': (lambda d: length_frame(0x81, b'short', 126), None, EITHER),
    'non-minimal 64-bit length': (lambda d: length_frame(0x82, bytes(300), 127), None, EITHER),
    'invalid utf-8': (lambda d: raw_frame(0x81, b'ok \xff'), 1007, EITHER),
    'overlong utf-8': (lambda d: raw_frame(0x81, b'\xc0\xaf'), 1007, EITHER),
    'surrogate in utf-8': (lambda d: raw_frame(0x81, b'\xed\xa0\x80'), 1007, EITHER),
    'utf-8 cut at the end': (lambda d: raw_frame(0x81, b'\xe2\x82'), 1007, EITHER),
    'invalid utf-8 compressed': (lambda d: raw_frame(0xC1, d(b'ok \xff')), 1007, DEFLATE),
    'surrogate compressed': (lambda d: raw_frame(0xC1, d(b'\xed\xbf\xbf')), 1007, DEFLATE),
    'utf-8 split across fragments': (
        lambda d: raw_frame(0x01, 'ü'.encode()[:1]) + raw_frame(0x80, 'ü'.encode()[1:]), None,
        EITHER),
    'invalid utf-8 in fragments': (
        lambda d: raw_frame(0x01, b'fine') + raw_frame(0x80, b'\xff'), 1007, EITHER),
    'ping over 125 bytes': (lambda d: raw_frame(0x89, bytes(126)), 1002, EITHER),
    'close over 125 bytes': (lambda d: close_frame(1000, bytes(124)), 1002, EITHER),
    'fragmented ping': (lambda d: raw_frame(0x09, b'a') + raw_frame(0x80, b'b'), 1002, EITHER),
    'continuation with no message': (lambda d: raw_frame(0x80, b'orphan'), 1002, EITHER),
    'a message inside a fragmented one': (
        lambda d: raw_frame(0x01, b'first') + raw_frame(0x81, b'second'), 1002, EITHER),
    **{f'close code {code}': ((lambda c: lambda d: close_frame(c))(code), 1002, EITHER)
       for code in (0, 999, 1004, 1005, 1006, 1015, 2999, 5000)},
    'close with one byte': (lambda d: raw_frame(0x88, b'\x03'), 1002, EITHER),
    'close reason not utf-8': (lambda d: close_frame(1000, b'\xff'), 1007, EITHER),
    'bad deflate data': (lambda d: raw_frame(0xC1, b'\xff\x00 not deflate'), 1002, DEFLATE),
    'bad deflate data, large': (lambda d: raw_frame(0xC2, b'\xff' * 3000), 1002, DEFLATE),
    # A stored block whose content is the tail the client appends: websockets 17 refuses it
    # from 2,044 compressed bytes on, earlier releases deliver it (judged by the comparison)
    'the tail inflating to content': (
        lambda d: raw_frame(0xC2, d(b'x' * 10) + b'\x00\x00\xff\xff\x00\x04\x00\xfb\xff'),
        ANY, DEFLATE),
    'the tail inflating to content, large': (
        lambda d: raw_frame(0xC2, d(random.Random(1).randbytes(3000))
                            + b'\x00\x00\xff\xff\x00\x04\x00\xfb\xff'), ANY, DEFLATE),
    # zlib ends the context at a final block: later messages inflate to nothing, websockets'
    # parser and the direct path alike (judged by the comparison alone)
    'a final deflate block mid-stream': (
        lambda d: raw_frame(0xC2, d(b'fine') + b'\x00\x00\xff\xff\x03\x00'), ANY, DEFLATE),
}


def case_compressions(need: str) -> List[str]:
    return {EITHER: ['plain', 'deflate', 'deflate per message'], PLAIN: ['plain'],
            DEFLATE: ['deflate', 'deflate per message']}[need]


CORPUS = [pytest.param(name, compression, id=f'{name}-{compression}')
          for name, (_, _, need) in CASES.items() for compression in case_compressions(need)]


def around(rng: random.Random, compression: str, hostile: bytes) -> bytes:
    """Return valid messages, the hostile frames, then a message and a ping."""
    before = frame_stream(rng, compression, MAX_SIZE, 'eof', sizes=(0, 1, 126, 1000))
    before = before[:before.rindex(raw_frame(0x81, b'after the ending'))]
    return before + hostile + raw_frame(0x81, b'after') + raw_frame(0x89, b'after')


@pytest.mark.parametrize('name,compression', CORPUS)
def test_hostile_frames_end_the_stream_as_websockets_would(name, compression):
    frames, code, _ = CASES[name]
    for seed in (None, 1, 2, 3):  # in one read, then cut three ways
        # A fresh compressor's output refers to nothing before it: valid in any context.
        stream = around(random.Random(seed), compression, frames(Deflater(compression)))
        outcome = assert_read_alike(stream, compression, seed)
        if code is None:
            assert outcome.messages[-1] == 'after'
        elif code is not ANY:
            assert outcome.codes[1] == code and 'after' not in outcome.messages


HOSTILE = [frames for frames, code, need in CASES.values() if code and need != DEFLATE]
HOSTILE_DEFLATE = [frames for frames, code, need in CASES.values() if code]  # ANY included


def mutate(rng: random.Random, compression: str) -> bytes:
    """Return a valid stream with one to three mutations: bytes flipped, frames spliced, cut."""
    deflate = Deflater(compression)
    stream = bytearray(frame_stream(rng, compression, 4000, 'close',
                                    sizes=(0, 1, 2, 125, 126, 300, 3000)))
    hostile = HOSTILE if compression == 'plain' else HOSTILE_DEFLATE
    for _ in range(rng.randint(1, 3)):
        kind = rng.random()
        where = rng.randrange(len(stream) + 1)
        if kind < 0.3:  # a bit flipped, often in a header
            where = min(where, len(stream) - 1)
            stream[where] ^= 1 << rng.randrange(8)
        elif kind < 0.45:
            where = min(where, len(stream) - 1)
            stream[where] = rng.randrange(256)
        elif kind < 0.75:  # hostile frames, two errors at once, pings after them
            spliced = b''.join(rng.choice(hostile)(deflate) for _ in range(rng.randint(1, 2)))
            stream[where:where] = spliced + raw_frame(0x89, b'after an error') * rng.randint(0, 2)
        elif kind < 0.85:
            del stream[where:where + rng.randrange(1, 40)]
        elif kind < 0.95:
            stream[where:where] = stream[max(0, where - 50):where]
        else:
            del stream[where:]
    return bytes(stream)


@pytest.mark.parametrize('block', range(4))
def test_mutated_streams_are_read_as_websockets_reads_them(block):
    endings: Counter = Counter()
    for seed in range(block * 300, (block + 1) * 300):  # 1,200 streams a run
        rng = random.Random(seed)
        compression = rng.choice(['plain', 'deflate', 'deflate per message'])
        outcome = assert_read_alike(mutate(rng, compression), compression, seed,
                                    max_size=4000)
        endings[outcome.codes[1]] += 1
        endings['parsed past a failure'] += outcome.parsed_past_failure
    # The mutations reach every ending: closed, protocol errors, bad UTF-8, too big, EOF,
    # and the reads where websockets parses past a failure.
    assert all(endings[ending] for ending in (1000, 1002, 1007, 1009, None,
                                              'parsed past a failure')), endings


# -- memory and time ------------------------------------------------------------------------

def peak_while_reading(reader, frames: List[bytes], compression: str) -> int:
    """Feed the handshake and then ``frames``; return tracemalloc's peak (bytes) meanwhile."""
    response = handshake_response(reader.request, compression)
    tracemalloc.start()
    try:
        reader.feed(response)
        for data in frames:
            reader.feed(data)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def reads(stream: bytes, size: int = 65536) -> List[bytes]:
    return [stream[start:start + size] for start in range(0, len(stream), size)]


def deflated_zeros(size: int, fragments: int = 1) -> List[bytes]:
    """``size`` zero bytes deflated (a bomb), as the payloads of ``fragments`` frames."""
    deflater, out = zlib.compressobj(9, zlib.DEFLATED, -15), bytearray()
    block = bytes(1 << 20)
    for _ in range(size >> 20):
        out += deflater.compress(block)
    out += deflater.flush(zlib.Z_SYNC_FLUSH)
    payload = bytes(out[:-4])
    step = -(-len(payload) // fragments)
    return [payload[start:start + step] for start in range(0, len(payload), step)]


@pytest.mark.parametrize('direct', [True, False])
@pytest.mark.parametrize('fragments', [1, 16])
def test_a_decompression_bomb_ends_with_1009_within_bounded_memory(direct, fragments):
    limit = 1 << 20
    parts = deflated_zeros(200 << 20, fragments)  # 200 MiB inflated from ~200 KB
    stream = b''.join(raw_frame((0x80 if index == len(parts) - 1 else 0)
                                | (0x42 if index == 0 else 0), part)
                      for index, part in enumerate(parts))
    reader = BridgeReader('deflate', limit, direct)
    peak = peak_while_reading(reader, reads(stream), 'deflate')
    outcome = reader.end()
    assert outcome.codes[1] == 1009 and outcome.messages == []
    assert peak < 4 * limit, f'{peak / limit:.1f} x the limit'


@pytest.mark.parametrize('direct', [True, False])
def test_a_flood_of_fragments_ends_with_1009_at_4096_fast_and_within_bounded_memory(direct):
    # A 2 MiB message in two-byte fragments (a million of them), the echo stream's limit.
    limit = 32 << 20
    stream = raw_frame(0x02, b'ab') + raw_frame(0x00, b'ab') * ((1 << 20) - 2) + raw_frame(
        0x80, b'ab')
    reader = BridgeReader('plain', limit, direct)
    started = time.process_time()
    peak = peak_while_reading(reader, reads(stream), 'plain')
    cpu = time.process_time() - started
    refused = reader.connection.refused
    outcome = reader.end()
    assert outcome.codes[1] == 1009 and outcome.messages == []
    assert refused.bound == 'fragments' and str(MAX_FRAGMENTS) in refused.detail
    assert peak < 2 << 20, f'{peak >> 10} KiB'  # a few reads, not the message's bookkeeping
    assert cpu < 2.0, f'{cpu:.2f} s of CPU'  # 6 s when every fragment was kept


@pytest.mark.parametrize('direct', [True, False])
def test_small_fragments_under_the_count_are_held_to_the_limit_with_their_cost(direct):
    limit = 100_000  # 2,000 fragments of 10 bytes: 20 KB of data, 148 KB counted
    stream = raw_frame(0x01, b'x' * 10) + (raw_frame(0x89, b'') + raw_frame(0x00, b'y' * 10)) * (
        1998) + raw_frame(0x80, b'z' * 10)
    reader = BridgeReader('plain', limit, direct)
    read(reader, stream, None, 'plain')
    assert reader.connection.refused.bound == 'assembly'
    assert reader.connection.protocol.close_sent.code == 1009


def test_a_flood_read_whole_is_parsed_in_bounded_slices_with_the_direct_path_off():
    # All of it in one read: websockets' parser gets PARSER_SLICE bytes at a time.
    limit = 32 << 20
    stream = raw_frame(0x02, b'') + raw_frame(0x00, b'') * 200_000
    reader = BridgeReader('plain', limit, direct=False)
    peak = peak_while_reading(reader, [stream], 'plain')
    assert reader.connection.refused.bound == 'fragments'
    assert peak < 4 * PARSER_SLICE * 100, f'{peak >> 10} KiB'


# -- compressed streams through a real socket ---------------------------------------------

def test_compressed_streams_through_a_real_socket_arrive_whole_and_in_order():
    class DeflatingServer(asyncio.Protocol):
        def __init__(self, accepted):
            self.protocol = ServerProtocol(extensions=[ServerPerMessageDeflateFactory()])
            self.accepted = accepted

        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.protocol.receive_data(data)
            for event in self.protocol.events_received():
                if not isinstance(event, Frame):
                    self.protocol.send_response(self.protocol.accept(event))
                    self.accepted.set_result(self)
            self.flush()

        def flush(self):
            for data in self.protocol.data_to_send():
                if data:
                    self.transport.write(data)

    rng = random.Random(7)
    sent: list = []
    for index in range(300):
        size = rng.choice([0, 1, 100, 5000, 70_000])
        if rng.random() < 0.5:
            sent.append(('ü%d ' % index * size)[:size])
        else:
            sent.append(rng.randbytes(size))

    async def scenario():
        loop = asyncio.get_running_loop()
        accepted = loop.create_future()
        server = await loop.create_server(lambda: DeflatingServer(accepted), '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        messages = Inbox()
        connection = await open_connection(f'ws://127.0.0.1:{port}/', messages,
                                           max_size=1 << 20)
        peer = await asyncio.wait_for(accepted, 5)
        for index, message in enumerate(sent):
            data = message.encode() if isinstance(message, str) else message
            send = peer.protocol.send_text if isinstance(message, str) else (
                peer.protocol.send_binary)
            if index % 7 == 3 and len(data) > 2:  # some fragmented, a ping between
                send(data[:2], fin=False)
                peer.protocol.send_ping(b'between')
                peer.protocol.send_continuation(data[2:], fin=True)
            else:
                send(data)
            peer.flush()
        await messages.wait_for(len(sent), 20)
        await connection.close()
        server.close()
        return list(messages)
    assert asyncio.run(scenario()) == sent

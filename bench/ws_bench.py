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
WebSocket receive micro-benchmark: a stream's bytes to the messages handed over, per core.

The frames are the emulator's: one simulated robot's topic echo (its topics interleaved at
their nominal rates, each message compressed in one permessage-deflate context, as aiohttp
sends them) and its camera (640x480 JPEGs, uncompressed). They are read in 64 KiB reads
by the bridge's WebSocketConnection, with whole messages taken straight out of the reads
(the bridge's direct path) and with every frame through websockets' parser and reader (the
bridge with the direct path off). Prints microseconds per frame on one core for both.

    python bench/ws_bench.py [--seconds S] [--json FILE]
"""

import argparse
import asyncio
import heapq
import json
import time
from typing import Any, Dict, List
import zlib

from roboflare_bridge.transport.websocket import (
    ClientProtocol, read_in_chunks, WebSocketConnection,
)
from roboflare_dev.emulator import contract
from roboflare_dev.emulator.sim import CameraFeed, SimRobot, TOPICS
from websockets.extensions.permessage_deflate import (
    enable_client_permessage_deflate, ServerPerMessageDeflateFactory,
)
from websockets.uri import parse_uri

try:  # websockets >= 11
    from websockets.server import ServerProtocol
except ImportError:  # websockets 10.4
    from websockets.server import ServerConnection as ServerProtocol  # type: ignore

READ_BYTES = 65536


def server_frame(first: int, payload: bytes) -> bytes:
    """Return a server's (unmasked) frame: first byte as given, then the length."""
    size = len(payload)
    if size < 126:
        return bytes([first, size]) + payload
    if size < 65536:
        return bytes([first, 126]) + size.to_bytes(2, 'big') + payload
    return bytes([first, 127]) + size.to_bytes(8, 'big') + payload


def echo_frames(seconds: float = 2.0) -> List[bytes]:
    """Return a robot's echo frames over ``seconds`` of simulated time, deflated in order."""
    robot = SimRobot(0, 'rbt_0001', 'robot-1')
    due = [(0.0, spec.name, spec) for spec in TOPICS if not spec.latched]
    heapq.heapify(due)
    deflater = zlib.compressobj(wbits=-15)
    frames = []
    while due[0][0] < seconds:
        at, name, spec = heapq.heappop(due)
        text = contract.dumps({'op': 'message', 'topic': name, 'type': spec.type,
                               'msg': robot.builders[name](1.7e9 + at)})
        deflated = deflater.compress(text.encode()) + deflater.flush(zlib.Z_SYNC_FLUSH)
        frames.append(server_frame(0xC1, deflated[:-4]))  # RFC 7692: the tail is left off
        heapq.heappush(due, (at + 1.0 / spec.rate_hz, name, spec))
    return frames


def camera_frames() -> List[bytes]:
    """Return the emulator's camera loop (640x480 JPEGs) as binary frames."""
    return [server_frame(0x82, jpeg) for jpeg in CameraFeed(640, 480).frames]


def receive_rate(frames: List[bytes], compressed: bool, direct: bool, seconds: float) -> float:
    """Return microseconds per frame (best round) for reading ``frames`` as one stream."""
    stream = b''.join(frames)
    reads = [stream[i:i + READ_BYTES] for i in range(0, len(stream), READ_BYTES)]
    delivered = [0]

    def on_message(message: Any) -> None:
        delivered[0] += 1

    async def one_round() -> float:
        protocol = ClientProtocol(
            parse_uri('ws://robot/stream'), max_size=1 << 20,
            extensions=enable_client_permessage_deflate(None) if compressed else None)
        if direct:
            read_in_chunks(protocol, set_aside=True)
        protocol.send_request(protocol.connect())
        server = ServerProtocol(  # a 15-bit window and one context, as aiohttp negotiates
            extensions=[ServerPerMessageDeflateFactory()] if compressed else None)
        server.receive_data(b''.join(protocol.data_to_send()))
        server.send_response(server.accept(server.events_received()[0]))
        connection = WebSocketConnection(protocol, on_message, 1.0)
        connection.data_received(b''.join(server.data_to_send()))
        delivered[0] = 0
        started = time.process_time()
        for data in reads:
            connection.data_received(data)
        elapsed = time.process_time() - started
        assert delivered[0] == len(frames), (delivered[0], len(frames))
        return elapsed / len(frames) * 1e6

    best, deadline = float('inf'), time.monotonic() + seconds
    while True:
        best = min(best, asyncio.run(one_round()))
        if time.monotonic() >= deadline:
            return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--seconds', type=float, default=2.0, help='per measurement')
    parser.add_argument('--json', help='also write the results to this file')
    args = parser.parse_args()
    results: Dict[str, Any] = {'read_bytes': READ_BYTES, 'kinds': []}
    print(f'{"stream":<18} {"frame bytes":>11} {"websockets us":>14} {"direct us":>10} '
          f'{"ratio":>6}')
    for kind, frames, compressed in (('topic echo', echo_frames(), True),
                                     ('camera', camera_frames(), False)):
        parsed = receive_rate(frames, compressed, False, args.seconds)
        direct = receive_rate(frames, compressed, True, args.seconds)
        row = {'kind': kind, 'frames': len(frames),
               'frame_bytes': round(sum(map(len, frames)) / len(frames)),
               'websockets_parser_us': round(parsed, 2), 'direct_us': round(direct, 2),
               'direct_vs_parser': round(direct / parsed, 2)}
        results['kinds'].append(row)
        print(f'{kind:<18} {row["frame_bytes"]:>11,} {parsed:>14.2f} {direct:>10.2f} '
              f'{row["direct_vs_parser"]:>6.2f}')
    if args.json:
        with open(args.json, 'w') as out:
            json.dump(results, out, indent=2)


if __name__ == '__main__':
    main()

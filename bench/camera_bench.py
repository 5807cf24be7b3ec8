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
Camera micro-benchmarks: JPEG passthrough against decoding, per core.

1. Passthrough: a sender process pushes ~100 KB JPEGs over a loopback WebSocket as fast as
   it can; this process receives them with the bridge's StreamClient and CameraMirror and
   publishes CompressedImage. Reported per CPU-second of this process (= per core).
2. Decode: JpegDecoder (decode + bgr8 Image) on the same 640x480 JPEG, one core.

Added latency and the fleet-wide figures are in fleet_bench.py.

    python bench/camera_bench.py [--seconds S] [--frames N] [--json FILE]
"""

import argparse
import asyncio
import json
import multiprocessing
import time

from harness import ros_environment
import numpy as np
import rclpy
from roboflare_bridge.mirror.camera import CameraMirror, receipt_clock
from roboflare_bridge.mirror.jpeg_decoding import JpegDecoder
from roboflare_bridge.transport.credentials import Token
from roboflare_bridge.transport.streams import StreamClient
import simplejpeg

TOKEN = 'rf_org_' + 'b' * 32


def realistic_jpeg(width=640, height=480, target=100_000):
    """Return a JPEG of about ``target`` bytes: a gradient with sensor-like noise."""
    rng = np.random.default_rng(1)
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([xs * 255 // width, ys * 255 // height, (xs + ys) % 256], -1)
    for noise in range(4, 80, 2):
        image = np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)
        jpeg = simplejpeg.encode_jpeg(image, quality=90, colorspace='RGB')
        if len(jpeg) >= target:
            return jpeg
    return jpeg


def _sender(port_queue, frame, count):
    from aiohttp import web

    async def camera(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for _ in range(count):
            await ws.send_bytes(frame)
        await ws.close()
        return ws

    async def serve():
        app = web.Application()
        app.router.add_get('/api/robots/{id}/camera/ws', camera)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, '127.0.0.1', 0)
        await site.start()
        port_queue.put(runner.addresses[0][1])
        await asyncio.sleep(3600)
    asyncio.run(serve())


def passthrough(node, frame, count):
    queue = multiprocessing.get_context('spawn').Queue()
    # A daemon, ended in finally: a failing run must not wait for the sender's hour of sleep.
    sender = multiprocessing.get_context('spawn').Process(target=_sender, daemon=True,
                                                          args=(queue, frame, count))
    sender.start()
    try:
        return _passthrough(node, frame, count, queue.get(timeout=30))
    finally:
        sender.terminate()


def _passthrough(node, frame, count, port):
    mirror = CameraMirror('bench', '/bench', 'bench/camera', node.create_publisher,
                          receipt_clock(node), None, 16 << 20)
    done = asyncio.Event()

    def on_frame(data):
        mirror.on_frame(data)
        if mirror.stats.published >= count:
            done.set()

    async def run():
        client = StreamClient(f'http://127.0.0.1:{port}', 'r', 'camera/ws', Token(TOKEN),
                              on_frame=on_frame, compression=False)
        task = asyncio.ensure_future(client.run())
        await client.connected.wait()
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.wait_for(done.wait(), 120)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        await client.stop()
        task.cancel()
        return cpu, wall
    cpu, wall = asyncio.run(run())
    return {'frames': count, 'frame_bytes': len(frame), 'frames_per_cpu_s': count / cpu,
            'frames_per_wall_s': count / wall, 'mb_per_s': count * len(frame) / wall / 1e6}


def decode(frame, seconds):
    decoder = JpegDecoder()
    count, started = 0, time.process_time()
    while time.process_time() - started < seconds:
        decoder.to_message(decoder.decode(frame))
        count += 1
    return {'decoder': decoder.name, 'cv_bridge': decoder.uses_cv_bridge,
            'frames_per_cpu_s': count / (time.process_time() - started)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--seconds', type=float, default=5.0, help='decode run length')
    parser.add_argument('--frames', type=int, default=5000, help='passthrough frames')
    parser.add_argument('--json')
    args = parser.parse_args()
    ros_environment(72)
    rclpy.init()
    node = rclpy.create_node('camera_bench')
    frame = realistic_jpeg()
    results = {'passthrough': passthrough(node, frame, args.frames),
               'decode_640x480': decode(frame, args.seconds)}
    p, d = results['passthrough'], results['decode_640x480']
    results['passthrough_vs_decode'] = p['frames_per_cpu_s'] / d['frames_per_cpu_s']
    print(f'passthrough  {p["frame_bytes"] / 1000:.0f} KB JPEGs: {p["frames_per_cpu_s"]:,.0f} '
          f'frames per CPU-second ({p["frames_per_wall_s"]:,.0f}/s wall, '
          f'{p["mb_per_s"]:.0f} MB/s)   target >= 1,500')
    print(f'decode       640x480 -> bgr8 ({d["decoder"]}): {d["frames_per_cpu_s"]:,.0f} frames '
          f'per CPU-second   target >= 100')
    print(f'passthrough is {results["passthrough_vs_decode"]:.1f}x cheaper than decoding')
    if args.json:
        with open(args.json, 'w') as out:
            json.dump(results, out, indent=2)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == '__main__':
    main()

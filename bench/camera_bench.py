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
Camera benchmarks: JPEG passthrough, added latency, decoding.

1. Passthrough: a sender process pushes ~100 KB JPEGs over a loopback WebSocket as fast as
   it can; this process receives them with the bridge's StreamClient and CameraMirror and
   publishes CompressedImage. Reported per CPU-second of this process (= per core).
2. Latency: the emulator (8 robots, 30 fps, 640x480) and a bridge process; this process
   subscribes to the 8 compressed topics; latency = delivery time - the bridge's receipt
   stamp.
3. Decode: JpegDecoder (decode + bgr8 Image) on a ~100 KB 640x480 JPEG, one core.

    python bench/camera_bench.py [--seconds S] [--json FILE]
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402
import simplejpeg  # noqa: E402

from roboflare_bridge.camera import CameraMirror, JpegDecoder  # noqa: E402
from roboflare_bridge.credentials import Token  # noqa: E402
from roboflare_bridge.streams import StreamClient  # noqa: E402

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
    sender = multiprocessing.get_context('spawn').Process(target=_sender,
                                                          args=(queue, frame, count))
    sender.start()
    port = queue.get(timeout=30)
    mirror = CameraMirror('bench', '/bench', 'bench/camera', node.create_publisher,
                          lambda: node.get_clock().now().to_msg(), None, 16 << 20)
    done = asyncio.Event()

    def on_frame(data):
        mirror.on_frame(data)
        if mirror.stats.published >= count:
            done.set()

    async def run():
        client = StreamClient(f'http://127.0.0.1:{port}', 'r', 'camera/ws', Token(TOKEN),
                              on_frame=on_frame, compression=False, max_queue=2)
        task = asyncio.ensure_future(client.run())
        await client.connected.wait()
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.wait_for(done.wait(), 120)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        await client.stop()
        task.cancel()
        return cpu, wall
    cpu, wall = asyncio.run(run())
    sender.terminate()
    return {'frames': count, 'frame_bytes': len(frame), 'frames_per_cpu_s': count / cpu,
            'frames_per_wall_s': count / wall, 'mb_per_s': count * len(frame) / wall / 1e6}


def latency(node, seconds, robots=8, fps=30):
    venv_bin = os.path.dirname(sys.executable)
    emulator = subprocess.Popen([os.path.join(venv_bin, 'emulator'), '--port', '0',
                                 '--robots', str(robots), '--camera-fps', str(fps),
                                 '--camera-size', '640x480', '--log-rate', '0.1'],
                                stdout=subprocess.PIPE, text=True)
    url = emulator.stdout.readline().split()[-1]
    token_file = tempfile.NamedTemporaryFile('w', delete=False)
    token_file.write(emulator.stdout.readline())
    token_file.close()
    ids = ','.join(f"'rbt_{i + 1:04d}'" for i in range(robots))
    bridge = subprocess.Popen([os.path.join(venv_bin, 'bridge'), '--ros-args',
                               '-p', f'base_url:={url}', '-p', f'token_file:={token_file.name}',
                               '-p', f'robots:=[{ids}]', '-p', "topics:=['/none']",
                               '-p', 'remote_logs:=false', '-p', 'decode_images:=false'],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples, lock = [], threading.Lock()

    def on_image(message):
        delay = time.time() - (message.header.stamp.sec + message.header.stamp.nanosec * 1e-9)
        with lock:
            samples.append(delay)
    subs = [node.create_subscription(CompressedImage,
                                     f'/roboflare/robot_{i + 1}/camera/image_raw/compressed',
                                     on_image, 10) for i in range(robots)]
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    deadline = time.time() + 30
    while len(samples) < robots * fps and time.time() < deadline:
        time.sleep(0.1)  # warm-up: discovery and connections
    with lock:
        samples.clear()
    time.sleep(seconds)  # the measurement window
    with lock:
        measured = sorted(samples)
    executor.shutdown()
    for sub in subs:
        node.destroy_subscription(sub)
    bridge.terminate()
    emulator.terminate()
    bridge.wait(10)
    emulator.wait(10)
    os.unlink(token_file.name)
    if not measured:
        return {'error': 'no frames received'}
    return {'robots': robots, 'fps_each': fps, 'frames': len(measured),
            'p50_ms': 1000 * statistics.median(measured),
            'p99_ms': 1000 * measured[int(len(measured) * 0.99) - 1],
            'max_ms': 1000 * measured[-1]}


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
    parser.add_argument('--seconds', type=float, default=10.0)
    parser.add_argument('--frames', type=int, default=5000)
    parser.add_argument('--json')
    args = parser.parse_args()
    os.environ.setdefault('ROS_DOMAIN_ID', str(socket.gethostname().__hash__() % 50 + 50))
    rclpy.init()
    node = rclpy.create_node('camera_bench')
    frame = realistic_jpeg()
    results = {'passthrough': passthrough(node, frame, args.frames),
               'decode_640x480': decode(frame, min(args.seconds, 5)),
               'latency_8x30fps': latency(node, args.seconds)}
    p, d, lat = results['passthrough'], results['decode_640x480'], results['latency_8x30fps']
    print(f'passthrough  {p["frame_bytes"] / 1000:.0f} KB JPEGs: {p["frames_per_cpu_s"]:,.0f} '
          f'frames per CPU-second ({p["frames_per_wall_s"]:,.0f}/s wall, '
          f'{p["mb_per_s"]:.0f} MB/s)   target >= 1,500')
    print(f'decode       640x480 -> bgr8 ({d["decoder"]}): {d["frames_per_cpu_s"]:,.0f} frames '
          f'per CPU-second   target >= 100')
    if 'error' in lat:
        print(f'latency      {lat["error"]}')
    else:
        print(f'latency      8 robots x 30 fps: p50 {lat["p50_ms"]:.2f} ms, p99 '
              f'{lat["p99_ms"]:.2f} ms, max {lat["max_ms"]:.2f} ms over {lat["frames"]} '
              f'frames   target p99 <= 5 ms')
    if args.json:
        with open(args.json, 'w') as out:
            json.dump(results, out, indent=2)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == '__main__':
    main()

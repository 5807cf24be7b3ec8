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
"""Camera mirroring: passthrough, on-demand decoding, bad frames, backpressure."""

import io
import threading

from builtin_interfaces.msg import Time
import numpy as np
from PIL import Image as PilImage
import pytest
import rclpy
from rclpy.parameter import Parameter
from roboflare_bridge.codec.rclpy_fast_paths import fast_paths
from roboflare_bridge.mirror.camera import CameraMirror, CameraStats, receipt_clock
from roboflare_bridge.mirror.jpeg_decoding import (
    bgr8_message, DecodeWorker, jpeg_size, JpegDecoder,
)
from roboflare_dev.emulator.sim import CameraFeed
from roboflare_dev.testing import FakePublisher

FEED = CameraFeed(160, 120)
JPEG = FEED.frame(4)
RECEIPT = (1_700_000_000, 5)  # the node clock at receipt


def reference_bgr(jpeg):
    """Decode with Pillow, an independent decoder, as BGR."""
    return np.asarray(PilImage.open(io.BytesIO(jpeg)).convert('RGB'))[:, :, ::-1]


class CountingDecoder(JpegDecoder):
    """The real decoder, counting its calls and optionally waiting on a gate."""

    def __init__(self, gate=None):
        super().__init__()
        self.calls, self.gate = 0, gate
        self.busy = threading.Event()

    def decode(self, jpeg):
        self.busy.set()
        if self.gate is not None:
            self.gate.wait(10)
        self.calls += 1
        return super().decode(jpeg)


def make_mirror(worker, raw_subscribers=0):
    publishers = {}

    def create(cls, topic, qos):
        subscribers = raw_subscribers if topic.endswith('image_raw') else 0
        publishers[topic] = FakePublisher(cls, topic, qos, subscribers)
        return publishers[topic]
    mirror = CameraMirror('robot_1', '/roboflare/robot_1', 'robot_1/camera_optical_frame',
                          create, lambda: RECEIPT, worker, max_frame_bytes=1 << 20)
    return mirror, publishers['/roboflare/robot_1/camera/image_raw/compressed'], \
        publishers.get('/roboflare/robot_1/camera/image_raw')


@pytest.fixture
def worker():
    w = DecodeWorker(CountingDecoder())
    yield w
    w.stop()


def test_rates_count_since_the_previous_reading():
    stats = CameraStats()
    stats.rates(100.0)
    for _ in range(10):
        stats.record(500)
    assert stats.rates(102.0) == (5.0, 2500.0)
    assert stats.rates(103.0) == (0.0, 0.0)


def test_rates_can_be_read_while_another_thread_records():
    # Diagnostics read from the executor's thread while the asyncio thread records; a
    # shared window of frames once raised "deque mutated during iteration" and took the
    # node down under load.
    stats, done = CameraStats(), threading.Event()
    stats.rates(0.0)  # readings below are one second apart

    def record():
        while not done.is_set():
            stats.record(1000)
    writer = threading.Thread(target=record)
    writer.start()
    try:
        readings = [stats.rates(float(i)) for i in range(1, 20001)]
    finally:
        done.set()
        writer.join()
    readings.append(stats.rates(20001.0))
    assert stats.frames > 0
    assert sum(fps for fps, _ in readings) == stats.frames  # every frame counted once
    assert sum(size for _, size in readings) == stats.bytes


def test_jpeg_size_reads_the_frame_header():
    assert jpeg_size(JPEG) == (160, 120)
    assert jpeg_size(b'\xff\xd8\xff\xd9') == (0, 0)


def test_decoder_matches_an_independent_reference_decode():
    decoder = JpegDecoder()
    image = decoder.decode(JPEG)
    assert image.shape == (120, 160, 3) and image.dtype == np.uint8
    difference = np.abs(image.astype(int) - reference_bgr(JPEG).astype(int))
    assert difference.max() <= 2  # IDCT rounding may differ by a level
    message = bgr8_message(image)
    assert (message.height, message.width, message.encoding, message.step) == (
        120, 160, 'bgr8', 480)
    assert bytes(message.data) == image.tobytes()


def test_compressed_passthrough_keeps_the_bytes_and_stamps_on_receipt(worker):
    mirror, compressed, raw = make_mirror(worker)
    mirror.on_frame(JPEG)
    message = compressed.messages[0]
    if fast_paths().cdr_publish:
        assert compressed.serialised == 1  # serialised around the bytes: no message built
    elif fast_paths().byte_slots:
        assert message.data is JPEG  # the very bytes received: no copy, no per-byte work
    assert bytes(message.data) == JPEG
    assert (message.format, message.header.frame_id) == ('jpeg',
                                                         'robot_1/camera_optical_frame')
    assert message.header.stamp == Time(sec=RECEIPT[0], nanosec=RECEIPT[1])
    assert mirror.stats.width == 160 and mirror.stats.published == 1


def test_no_decode_without_subscribers_and_decode_with_one(worker):
    mirror, _, raw = make_mirror(worker, raw_subscribers=0)
    for _ in range(20):
        mirror.on_frame(JPEG)
    assert worker.decoder.calls == 0 and raw.messages == []
    raw.subscribers = 1
    mirror.on_frame(JPEG)
    assert raw.published.acquire(timeout=5)
    image = raw.messages[0]
    assert (image.width, image.height, image.encoding) == (160, 120, 'bgr8')
    assert image.header.frame_id == 'robot_1/camera_optical_frame'
    assert image.header.stamp == Time(sec=RECEIPT[0], nanosec=RECEIPT[1])
    assert worker.decoder.calls == 1 and mirror.stats.decoded == 1


def test_frames_are_stamped_by_the_node_clock_simulated_or_not(ros):
    node = rclpy.create_node('camera_clock_test', context=ros.context)
    try:
        clock = node.get_clock()
        now = receipt_clock(node)
        before = clock.now().nanoseconds
        sec, nanosec = now()
        assert before <= sec * 10 ** 9 + nanosec <= clock.now().nanoseconds
        node.set_parameters([Parameter('use_sim_time', value=True)])
        # Simulated time, and no /clock message yet: the clock reads zero, and so do stamps.
        assert now() == clock.now().seconds_nanoseconds() == (0, 0)
        node.set_parameters([Parameter('use_sim_time', value=False)])
        before = clock.now().nanoseconds
        sec, nanosec = now()
        assert before <= sec * 10 ** 9 + nanosec <= clock.now().nanoseconds
    finally:
        node.destroy_node()


@pytest.mark.parametrize('frame,reason', [
    (b'', 'bad frame'), (b'GIF89a' + bytes(100), 'bad frame'),
    (JPEG[:len(JPEG) // 2], 'bad frame'),
    (b'\xff\xd8' + bytes(2 << 20) + b'\xff\xd9', 'bad frame'),
])
def test_bad_frames_are_dropped_and_counted_and_the_stream_goes_on(worker, frame, reason):
    mirror, compressed, _ = make_mirror(worker)
    mirror.on_frame(frame)
    mirror.on_frame('a text frame is ignored')
    mirror.on_frame(JPEG)
    assert mirror.drops.snapshot() == {reason: 1}
    assert [bytes(m.data) for m in compressed.messages] == [JPEG]


def test_corrupt_jpeg_that_passes_the_markers_is_counted_as_undecodable(worker):
    mirror, compressed, raw = make_mirror(worker, raw_subscribers=1)
    corrupt = JPEG[:2] + bytes(len(JPEG) - 4) + JPEG[-2:]
    done = threading.Event()
    original = mirror._decoded
    mirror._decoded = lambda seconds: (original(seconds), done.set())
    mirror.on_frame(corrupt)
    assert done.wait(5)
    assert mirror.stats.decode_failures == 1 and mirror.drops.snapshot()['undecodable'] == 1
    assert raw.messages == []


def test_newest_frame_wins_when_decoding_falls_behind():
    gate = threading.Event()
    worker = DecodeWorker(CountingDecoder(gate))
    try:
        mirror, _, raw = make_mirror(worker, raw_subscribers=1)
        frames = [FEED.frame(i) for i in range(30)]
        mirror.on_frame(frames[0])
        assert worker.decoder.busy.wait(5)
        for frame in frames[1:]:  # the decoder is stuck on the first: the rest pile up
            mirror.on_frame(frame)
        assert len(worker._pending) <= 1  # memory: one pending frame per camera
        gate.set()
        assert raw.published.acquire(timeout=5) and raw.published.acquire(timeout=5)
        assert worker.decoder.calls == 2  # the first, then only the newest
        assert mirror.drops.snapshot()['stale frame'] == 28
        newest = reference_bgr(frames[-1])
        assert np.abs(np.frombuffer(bytes(raw.messages[-1].data), np.uint8).reshape(
            newest.shape).astype(int) - newest).max() <= 2
    finally:
        worker.stop()

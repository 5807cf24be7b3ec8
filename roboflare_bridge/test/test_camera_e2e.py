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
"""Camera streams of an emulated robot through a bridge process."""

import io
import threading
import time

import numpy as np
from PIL import Image as PilImage
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from roboflare_dev.testing import (
    BridgeProcess, Collector, diagnostics_values, EmulatorProcess, EmulatorThread, RosHarness,
    rss_bytes,
)
from sensor_msgs.msg import CompressedImage, Image

CAMERA = 'robot robot_1'
BRIDGE_PARAMS = {'robots': ['rbt_0001'], 'remote_logs': False, 'topics': ['/chatter'],
                 'diagnostics_period_s': 0.5}


@pytest.fixture(scope='module')
def camera(tmp_path_factory):
    emulator = EmulatorThread(robots=1, camera_fps=30, camera_size=(320, 240))
    bridge = BridgeProcess(tmp_path_factory.mktemp('camera'), emulator.url, emulator.token,
                           BRIDGE_PARAMS)
    yield emulator, bridge
    assert bridge.stop() == 0, bridge.log()
    emulator.close()


def test_no_decoding_while_nobody_subscribes_to_image_raw(ros, camera):
    # The compressed topic's subscriber makes the camera stream (on demand); nothing
    # subscribes to image_raw.
    sub = ros.node.create_subscription(
        CompressedImage, '/roboflare/robot_1/camera/image_raw/compressed', Collector(), 10)
    try:
        values = diagnostics_values(ros, CAMERA, 30, lambda v: int(v['camera_frames']) >= 30)
    finally:
        ros.destroy(sub)
    assert values['camera_decoded'] == '0'
    assert values['camera_resolution'] == '320x240'
    assert 20 <= float(values['camera_fps']) <= 40


def test_compressed_bytes_are_identical_to_what_the_emulator_sent(ros, camera):
    emulator, _ = camera
    collector = Collector()
    sub = ros.node.create_subscription(
        CompressedImage, '/roboflare/robot_1/camera/image_raw/compressed', collector, 10)
    try:
        messages = collector.count(10, 30)
    finally:
        ros.destroy(sub)
    sent = set(emulator.emulator.camera.frames)
    assert all(bytes(m.data) in sent for m in messages)
    assert len({bytes(m.data) for m in messages}) > 1
    assert all(m.format == 'jpeg' and m.header.frame_id == 'robot_1/camera_optical_frame'
               for m in messages)
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in messages]
    assert stamps == sorted(stamps) and abs(stamps[-1] - time.time()) < 5  # on receipt


def test_decoded_image_matches_a_reference_decode(ros, camera):
    compressed, raw = Collector(), Collector()
    subs = [ros.node.create_subscription(
        CompressedImage, '/roboflare/robot_1/camera/image_raw/compressed', compressed, 50),
        ros.node.create_subscription(Image, '/roboflare/robot_1/camera/image_raw', raw, 10)]
    try:
        images = raw.count(3, 30)
        by_stamp = {(m.header.stamp.sec, m.header.stamp.nanosec): m
                    for m in compressed.wait_for(lambda ms: len(ms) > 10, 30)}
    finally:
        for sub in subs:
            ros.destroy(sub)
    matched = [(image, by_stamp[(image.header.stamp.sec, image.header.stamp.nanosec)])
               for image in images if (image.header.stamp.sec, image.header.stamp.nanosec)
               in by_stamp]
    assert matched, 'raw and compressed images share their receipt stamp'
    for image, jpeg in matched:
        assert (image.width, image.height, image.encoding, image.step) == (320, 240, 'bgr8',
                                                                           960)
        reference = np.asarray(PilImage.open(io.BytesIO(bytes(jpeg.data))).convert('RGB'))
        pixels = np.frombuffer(bytes(image.data), np.uint8).reshape(240, 320, 3)
        assert np.abs(pixels.astype(int) - reference[:, :, ::-1].astype(int)).max() <= 2


def test_bad_frames_are_dropped_and_counted_while_the_stream_goes_on(ros, camera):
    emulator, _ = camera
    result = emulator.control('POST', '/_emulator/robots/rbt_0001/camera/ws/inject', {
        'frames_b64': ['', 'R0lGODlhAQABAAAAACw=', 'SGVsbG8='],
        'frames': ['text frames are ignored']})
    assert result['connections'] == 1
    values = diagnostics_values(ros, CAMERA, 30,
                                lambda v: int(v.get('camera_drops.bad frame', 0)) >= 3)
    frames = int(values['camera_frames'])
    diagnostics_values(ros, CAMERA, 30, lambda v: int(v['camera_frames']) > frames + 10)


def test_oversized_frame_is_dropped_with_bounded_memory_and_the_stream_recovers(ros, camera):
    emulator, bridge = camera
    before = rss_bytes(bridge.proc.pid)
    emulator.control('POST', '/_emulator/robots/rbt_0001/camera/ws/inject',
                     {'jpeg_like_bytes': [100 << 20]})
    values = diagnostics_values(ros, 'rbt_0001/camera/ws', 30,
                                lambda v: int(v['drops']) >= 1 and v['connected'] == 'true')
    assert 'exceeded camera_max_frame_bytes' in values['last_error']
    assert rss_bytes(bridge.proc.pid) - before < 30 << 20  # never held the 100 MB frame


def test_slow_subscriber_and_slow_decoding_drop_stale_frames_with_bounded_memory(tmp_path):
    # A separate emulator process: its frame rate must not depend on this process's load.
    emulator = EmulatorProcess('--robots', '1', '--camera-fps', '120',
                               '--camera-size', '1920x1080')
    # Its own namespace: the module's other bridge mirrors the same robot name.
    bridge = BridgeProcess(tmp_path, emulator.url, emulator.token,
                           dict(BRIDGE_PARAMS, namespace_format='/slow/{robot}'))
    mine = '/slow/robot_1'
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('slow_viewer', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    received = []

    def slow(image):
        received.append(image.header.stamp)
        time.sleep(0.2)  # a viewer that cannot keep up (the behaviour under test)
    node.create_subscription(Image, f'{mine}/camera/image_raw', slow, 1)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    diag_context_node = None
    try:
        diag_context_node = RosHarness()
        diagnostics_values(diag_context_node, CAMERA, 60,
                           lambda v: v['namespace'] == mine and int(v['camera_decoded']) >= 5)
        early = rss_bytes(bridge.proc.pid)
        values = diagnostics_values(diag_context_node, CAMERA, 60, lambda v: v['namespace'] ==
                                    mine and int(v['camera_decoded']) >= 60)
        late = rss_bytes(bridge.proc.pid)
        frames, decoded = int(values['camera_frames']), int(values['camera_decoded'])
        stale = int(values.get('camera_drops.stale frame', 0))
        assert stale > 0 and decoded < frames, str(values)  # decoding fell behind
        assert late - early < 64 << 20, f'RSS grew from {early >> 20} to {late >> 20} MiB'
        assert len(received) < decoded  # the viewer saw fewer: nothing queued up for it
    finally:
        if diag_context_node is not None:
            diag_context_node.close()
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
        assert bridge.stop() == 0
        emulator.close()

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
"""The private-API fast paths: self-tests, public fallbacks, the bridge with them all off."""

import logging
import os
from pathlib import Path
import subprocess
import sys
import time

from nav_msgs.msg import Odometry
import pytest
from rcl_interfaces.msg import Log
from rclpy.serialization import deserialize_message, serialize_message
from roboflare_bridge.codec import rclpy_fast_paths
from roboflare_bridge.codec.rclpy_fast_paths import fast_paths, set_bytes, take_queued
from roboflare_bridge.common.fast_paths import ENVIRONMENT
from roboflare_dev.testing import (
    BridgeProcess, Collector, EmulatorThread, start_python, stop_process,
)
from sensor_msgs.msg import CompressedImage

HERE = Path(__file__).parent


def test_this_rclpy_passes_the_self_tests():
    # On the rclpy this runs on (Jazzy and Kilted wheels), the internals behave as assumed.
    assert rclpy_fast_paths._byte_slots_work() and rclpy_fast_paths._slot_construction_works()
    assert rclpy_fast_paths._cdr_publish_works()


ALL = {'take_queued', 'byte_slots', 'slot_construction', 'cdr_publish'}


@pytest.mark.parametrize('setting,off', [('0', ALL), ('byte_slots', {'byte_slots'}),
                                         ('cdr_publish', {'cdr_publish'}), ('', set())])
def test_the_environment_turns_fast_paths_off(setting, off, caplog, monkeypatch):
    monkeypatch.setenv(ENVIRONMENT, setting)
    with caplog.at_level(logging.INFO, logger='roboflare_bridge.codec.rclpy_fast_paths'):
        chosen = rclpy_fast_paths._detect()
    assert {name for name in ALL if not getattr(chosen, name)} == off
    assert 'rclpy fast paths:' in caplog.text  # said once, at the choice


@pytest.mark.parametrize('fast', [True, False])
def test_bytes_are_set_either_way_and_serialise_the_same(monkeypatch, fast):
    monkeypatch.setattr(fast_paths(), 'byte_slots', fast)
    payload = bytes(range(256)) * 10
    message = CompressedImage(format='jpeg')
    set_bytes(message, 'data', payload)
    assert bytes(deserialize_message(serialize_message(message), CompressedImage).data) \
        == payload


class _HandleWithoutTake:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Subscription:
    msg_type, raw, handle = Log, True, _HandleWithoutTake()


def test_a_failing_take_turns_the_fast_path_off_once(monkeypatch, caplog):
    monkeypatch.setattr(fast_paths(), 'take_queued', True)
    taken = []
    with caplog.at_level(logging.WARNING, logger='roboflare_bridge.codec.rclpy_fast_paths'):
        assert take_queued(_Subscription(), lambda *sample: taken.append(sample), 10) == 0
        assert take_queued(_Subscription(), lambda *sample: taken.append(sample), 10) == 0
    assert not fast_paths().take_queued and not taken
    assert caplog.text.count('take_queued failed') == 1


def test_unit_suites_pass_with_every_fast_path_off():
    result = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-x',
         'test/test_codec.py', 'test/test_camera.py', 'test/test_mirror.py',
         'test/test_logs.py', 'test/test_streams.py', 'test/test_websocket.py'],
        cwd=HERE.parent, env=dict(os.environ, **{ENVIRONMENT: '0'}), capture_output=True,
        text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]


def forwarded(emulator):
    return [r['msg'] for r in emulator.world.uploaded_logs.get('rbt_0001', ())
            if r['logger'] == 'talker']


def test_the_bridge_mirrors_and_forwards_with_every_fast_path_off(ros, tmp_path):
    emulator = EmulatorThread(robots=1)
    bridge = BridgeProcess(tmp_path, emulator.url, emulator.token,
                           {'robots': ['rbt_0001'], 'topics': ['/odom'],
                            'remote_logs': False, 'forward_logs': True,
                            'robot_id': 'rbt_0001', 'spool_dir': str(tmp_path / 'spool')},
                           env={ENVIRONMENT: '0'})
    odom, images = Collector(), Collector()
    subscriptions = [
        ros.node.create_subscription(Odometry, '/roboflare/robot_1/odom', odom, 10),
        ros.node.create_subscription(CompressedImage,
                                     '/roboflare/robot_1/camera/image_raw/compressed', images,
                                     10)]
    try:
        assert odom.count(3, 30)[-1].header.frame_id == 'robot_1/odom'
        image = images.count(2, 30)[-1]
        assert bytes(image.data[:2]) == b'\xff\xd8' and bytes(image.data[-2:]) == b'\xff\xd9'
        talker = start_python(HERE / 'peers' / 'talker.py', '50', '100')
        deadline = time.monotonic() + 30
        while len(forwarded(emulator)) < 50:
            assert time.monotonic() < deadline, 'the records were not forwarded'
            time.sleep(0.1)  # polling state held by the emulator thread, with a deadline
        stop_process(talker)
        assert forwarded(emulator) == [f'record {i}' for i in range(50)]
    finally:
        for subscription in subscriptions:
            ros.destroy(subscription)
        assert bridge.stop() == 0, bridge.log()[-2000:]
        emulator.close()
    assert 'take_queued off (public API)' in bridge.log()

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
"""/diagnostics publishing: a status that fails to build is logged and counted, not fatal."""

import logging

import rclpy
from roboflare_bridge.diagnostics import Diagnostics, OK, status


def test_a_failing_collection_skips_one_period_and_the_next_one_publishes(caplog):
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('diagnostics_test', context=context)
    calls = []

    def collect(now):
        calls.append(now)
        if len(calls) == 1:
            raise RuntimeError('deque mutated during iteration')
        yield status('camera', OK, 'fine', {'fps': 30.0})
    diagnostics = Diagnostics(node, 3600.0, collect)  # periods driven by hand below
    try:
        with caplog.at_level(logging.ERROR, logger='roboflare_bridge.diagnostics'):
            diagnostics.publish()
        assert diagnostics.failures == 1 and diagnostics.last is None
        assert 'collecting diagnostics failed' in caplog.text and 'deque mutated' in caplog.text
        diagnostics.publish()
        assert diagnostics.failures == 1
        [camera] = diagnostics.last.status
        assert camera.name == 'roboflare_bridge: camera'
        assert {kv.key: kv.value for kv in camera.values} == {'fps': '30.000'}
    finally:
        diagnostics.destroy()
        node.destroy_node()
        rclpy.shutdown(context=context)

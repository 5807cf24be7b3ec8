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
ROS 2 bridge for the Roboflare robot-fleet control plane.

Its subpackages are layers; a module imports from its own layer and the layers below it
only (test_layers.py holds every import to that), top to bottom:

- ``node``: the ``bridge`` node (wiring, signals, diagnostics) and the launch file's arguments
- ``tools``: the other executables, ``check_api`` and ``rviz_config``
- ``shell``: ``shell``, a remote robot's PTY in this machine's terminal (no ROS surface)
- ``fleet``: which of the org's robots are mirrored, followed as they join, leave and rename
- ``mirror``: remote -> local, per robot: topics, camera, logs
- ``upstream``: local -> remote: this machine's ``/rosout``, spooled and acknowledged
- ``parameters``: the parameter table (a module)
- ``control``: the HTTP control plane: client, resources, contract check, services and actions
- ``codec``: JSON frames to ROS messages and serialised CDR, rclpy's fast paths
- ``transport``: WebSocket connections, reconnecting streams, their wire shapes, credentials
- ``common``: what every layer uses: JSON, globs, counted drops, the asyncio thread

What the bridge assumes of the Roboflare wire is in ``docs/contract.md``; its ROS surface in
``docs/ros-api.md``.
"""

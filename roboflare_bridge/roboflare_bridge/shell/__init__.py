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
A shell on a remote robot from this machine's terminal: ``ros2 run roboflare_bridge shell``.

The robot's ``shell/ws`` stream (PTY bytes) joined to the local terminal: ``escape`` (the
``~.`` escape, sans-I/O), ``terminal`` (raw mode and window size, restored on every exit),
``session`` (the stream and the terminal's bytes, on asyncio) and ``cli`` (credentials, the
robot, exit statuses). Deliberately no ROS service, topic or action: anyone on the DDS
domain could use it.
"""

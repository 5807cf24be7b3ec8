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
The one switch of every fast path: the bridge's uses of libraries' private internals.

Each fast path tests itself once against the public API it replaces and falls back on that
API for good if anything is missing or differs (rclpy's in rclpy_fast_paths.py, the WebSocket
direct frame path in websocket.py). ``ROBOFLARE_FAST_PATHS=0`` turns every one off;
a comma list (``ROBOFLARE_FAST_PATHS=cdr_publish,ws_direct``) names those to turn off.
"""

import os

ENVIRONMENT = 'ROBOFLARE_FAST_PATHS'


def switched_off(name: str) -> bool:
    """Return whether the environment turns the fast path ``name`` off."""
    setting = os.environ.get(ENVIRONMENT, '').strip()
    return setting == '0' or name in {part.strip() for part in setting.split(',')}


__all__ = ['ENVIRONMENT', 'switched_off']

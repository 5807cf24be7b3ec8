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
"""JSON with orjson when it is installed (several times faster), the standard library if not."""

from __future__ import annotations

import json
from typing import Any, Union

try:
    import orjson
except ImportError:  # orjson has no rosdep key; it is an optional speed-up
    orjson = None  # type: ignore[assignment]

if orjson is not None:
    JSONDecodeError: type = orjson.JSONDecodeError

    def loads(data: Union[str, bytes]) -> Any:
        """Parse JSON; raise JSONDecodeError (a ValueError)."""
        return orjson.loads(data)

    def dumps(obj: Any) -> str:
        """Serialise to compact JSON text."""
        return orjson.dumps(obj).decode()
else:
    JSONDecodeError = json.JSONDecodeError

    def loads(data: Union[str, bytes]) -> Any:
        """Parse JSON; raise JSONDecodeError (a ValueError)."""
        return json.loads(data)

    def dumps(obj: Any) -> str:
        """Serialise to compact JSON text."""
        return json.dumps(obj, separators=(',', ':'), allow_nan=False)

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
"""Globs over ROS names: ``*`` and ``?`` stay within one name level, ``**`` crosses levels."""

import re
from typing import Dict, List, Pattern, Sequence


def topic_selected(topic: str, allow: Sequence[str], deny: Sequence[str]) -> bool:
    """Return True if topic matches an allow glob and no deny glob."""
    return (any(glob_match(topic, p) for p in allow)
            and not any(glob_match(topic, p) for p in deny))


def glob_match(topic: str, pattern: str) -> bool:
    """Match a topic name: * stays within one name level, ** crosses levels."""
    return _compiled(pattern).fullmatch(topic) is not None


_GLOB_CACHE: Dict[str, Pattern[str]] = {}


def _compiled(pattern: str) -> Pattern[str]:
    regex = _GLOB_CACHE.get(pattern)
    if regex is None:
        parts: List[str] = []
        i = 0
        while i < len(pattern):
            if pattern.startswith('**', i):
                parts.append('.*')
                i += 2
            elif pattern[i] == '*':
                parts.append('[^/]*')
                i += 1
            elif pattern[i] == '?':
                parts.append('[^/]')
                i += 1
            else:
                parts.append(re.escape(pattern[i]))
                i += 1
        regex = _GLOB_CACHE[pattern] = re.compile(''.join(parts))
    return regex


__all__ = ['glob_match', 'topic_selected']

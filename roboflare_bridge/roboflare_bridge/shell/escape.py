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
The escape that leaves a remote shell, as ssh's: ``~.`` typed at the start of a line (sans-I/O).

At the start of a line (the session's first byte, or after Enter), the escape character
is held back: ``~.`` leaves, ``~?`` shows the escapes, ``~~`` sends one ``~``, and ``~``
followed by anything else sends both. Anywhere else ``~`` is an ordinary keystroke, so
programs on the robot (an editor, a ``~/path``) see every byte typed.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple, Optional

DEFAULT_ESCAPE = '~'
LINE_ENDS = b'\r\n'


class Action(Enum):
    """What an escape asked for."""

    LEAVE = 'leave'
    HELP = 'help'


class Scanned(NamedTuple):
    """Keystrokes to send on, and the escape typed among them, if any."""

    send: bytes
    action: Optional[Action] = None


def help_text(escape: str) -> str:
    return (f'Supported escapes (at the start of a line):\r\n'
            f'  {escape}.  leave the remote shell\r\n'
            f'  {escape}?  this help\r\n'
            f'  {escape}{escape}  send {escape} itself\r\n')


class EscapeScanner:
    """Finds the escape in typed bytes; holds back an escape character until the next byte."""

    def __init__(self, escape: Optional[str] = DEFAULT_ESCAPE) -> None:
        self.escape = escape.encode() if escape else None  # None: no escape at all
        self._line_start = True
        self._pending = False  # an escape character at the start of a line, not yet sent

    def feed(self, data: bytes) -> Scanned:
        """Return what to send of ``data``; a leave escape ends it (what follows is not sent)."""
        if self.escape is None:
            return Scanned(data)
        out = bytearray()
        action = None
        for index in range(len(data)):
            char = data[index:index + 1]
            if self._pending:
                self._pending = False
                if char == b'.':
                    return Scanned(bytes(out), Action.LEAVE)
                if char == b'?':
                    action = Action.HELP
                    continue  # the line stays at its start: another escape may follow
                if char != self.escape:
                    out += self.escape  # not an escape: the character goes as typed
            elif self._line_start and char == self.escape:
                self._pending = True
                continue
            out += char
            self._line_start = char in LINE_ENDS
        return Scanned(bytes(out), action)


__all__ = ['Action', 'DEFAULT_ESCAPE', 'EscapeScanner', 'help_text', 'Scanned']

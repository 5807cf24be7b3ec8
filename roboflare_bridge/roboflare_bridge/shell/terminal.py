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
The local terminal: raw mode while a session runs, its window size, and restoring it.

Only a terminal is touched: with stdin or stdout not a terminal nothing is changed, so the
client works in scripts and pipes. The mode is restored by :meth:`Terminal.restore`, which
the client calls on every exit path (idempotent), with ``TCSAFLUSH`` as ssh does.
"""

from __future__ import annotations

import fcntl
import os
import struct
import termios
import tty
from typing import Any, List, Optional, Tuple

DEFAULT_SIZE = (80, 24)  # columns, rows: what a session gets with no terminal to ask


class Terminal:
    """stdin, stdout and, when stdin is a terminal, its saved mode."""

    def __init__(self, stdin_fd: int = 0, stdout_fd: int = 1) -> None:
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self.output_is_terminal = os.isatty(stdout_fd)
        # Raw mode only with both ends on a terminal: `shell robot | tee log` types lines.
        self.interactive = os.isatty(stdin_fd) and self.output_is_terminal
        self._saved: Optional[List[Any]] = None

    def enter_raw_mode(self) -> None:
        """Put the terminal in raw mode (keystrokes as typed, no local echo), if it is one."""
        if self.interactive and self._saved is None:
            self._saved = termios.tcgetattr(self.stdin_fd)
            tty.setraw(self.stdin_fd, termios.TCSAFLUSH)

    def restore(self) -> None:
        """Put the terminal back as it was; safe to call more than once."""
        if self._saved is not None:
            try:
                termios.tcsetattr(self.stdin_fd, termios.TCSAFLUSH, self._saved)
            except termios.error:
                pass  # the terminal went away (a closed window): nothing to restore
            self._saved = None

    @property
    def raw(self) -> bool:
        return self._saved is not None

    def size(self) -> Tuple[int, int]:
        """Return (columns, rows) of whichever of stdout and stdin is a terminal."""
        for fd in (self.stdout_fd, self.stdin_fd):
            try:
                rows, cols, _, _ = struct.unpack(
                    'HHHH', fcntl.ioctl(fd, termios.TIOCGWINSZ, b'\0' * 8))
            except OSError:
                continue
            if rows and cols:
                return cols, rows
        return DEFAULT_SIZE

    def write(self, data: bytes) -> None:
        """Write all of ``data`` to stdout (blocking: the terminal sets the pace)."""
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.stdout_fd, view)
            except BlockingIOError:
                os.set_blocking(self.stdout_fd, True)
                continue
            view = view[written:]


__all__ = ['DEFAULT_SIZE', 'Terminal']

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
A simulated robot's PTY and the small confined shell it runs (sans-I/O; never the host's).

:class:`RobotShell` is fed the bytes typed on ``shell/ws`` and returns what the PTY sends
back: a line discipline as a terminal in cooked mode has one (echo, backspace, ^C, ^D on an
empty line, CR -> CRLF) and a shell of a few commands over a fake filesystem that exists
only in this object: ``help``, ``echo``, ``pwd``, ``cd``, ``ls``, ``cat``, ``hostname``,
``stty size`` (the window size the client last sent), ``uptime``, ``exit [N]``.
"""

from __future__ import annotations

import posixpath
import shlex
from typing import Callable, Dict, List, Optional, Tuple

MAX_LINE = 4096  # bytes of one typed line; beyond, the PTY rings the bell and drops them
BELL = b'\x07'
COMMANDS = ('help', 'echo', 'pwd', 'cd', 'ls', 'cat', 'hostname', 'stty', 'uptime', 'exit')


def fake_filesystem(robot_name: str) -> Dict[str, Optional[str]]:
    """Return the robot's files: path -> text, or None for a directory."""
    return {
        '/': None, '/etc': None, '/etc/hostname': robot_name + '\n',
        '/home': None, '/home/robot': None,
        '/home/robot/config.yaml': 'max_speed: 1.2\nlidar: true\n',
        '/home/robot/logs': None,
        '/home/robot/logs/driver.log': '[WARN] wheel encoder timeout\n',
    }


class RobotShell:
    """One shell session: feed it keystrokes, get PTY output; :attr:`exit_status` at the end."""

    def __init__(self, robot_name: str, started_s: float = 0.0) -> None:
        self.name = robot_name
        self.files = fake_filesystem(robot_name)
        self.cwd = '/home/robot'
        self.cols, self.rows = 80, 24
        self.exit_status: Optional[int] = None
        self._line = bytearray()
        self._last_status = 0
        self._started_s = started_s
        self._now_s = started_s
        self._commands: Dict[str, Callable[[List[str]], Tuple[str, int]]] = {
            'help': self._help, 'echo': self._echo, 'pwd': self._pwd, 'cd': self._cd,
            'ls': self._ls, 'cat': self._cat, 'hostname': self._hostname,
            'stty': self._stty, 'uptime': self._uptime, 'exit': self._exit}

    def prompt(self) -> bytes:
        home = '/home/robot'
        where = '~' + self.cwd[len(home):] if self.cwd.startswith(home) else self.cwd
        return f'robot@{self.name}:{where}$ '.encode()

    def resize(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows

    def feed(self, data: bytes, now_s: float = 0.0) -> bytes:
        """Take typed bytes; return what the PTY writes back (echo, output, prompts)."""
        out = bytearray()
        for byte in data:
            if self.exit_status is not None:
                break
            char = bytes([byte])
            if char in (b'\r', b'\n'):
                out += b'\r\n'
                out += self._run(self._line.decode('utf-8', 'replace'), now_s)
                self._line.clear()
            elif char in (b'\x7f', b'\x08'):
                if self._line:
                    del self._line[-1]
                    out += b'\x08 \x08'
            elif char == b'\x03':  # ^C: the line is abandoned
                self._line.clear()
                self._last_status = 130
                out += b'^C\r\n' + self.prompt()
            elif char == b'\x04':  # ^D: end of input on an empty line
                if not self._line:
                    out += b'exit\r\n'
                    self.exit_status = self._last_status
            elif len(self._line) >= MAX_LINE:
                out += BELL
            elif byte >= 0x20 or char == b'\t':
                self._line += char
                out += char
        return bytes(out)

    def _run(self, line: str, now_s: float) -> bytes:
        """Run a typed line: commands separated by ``;``, each as the shell would."""
        self._now_s = now_s
        text = ''
        try:
            lexer = shlex.shlex(line, posix=True, punctuation_chars=';')
            lexer.whitespace_split = True
            tokens = list(lexer)
        except ValueError as exc:
            tokens, text, self._last_status = [], f'sh: {exc}\n', 2
        commands: List[List[str]] = [[]]
        for token in tokens:
            if token == ';':
                commands.append([])
            else:
                commands[-1].append(token)
        for words in commands:
            if not words or self.exit_status is not None:
                continue
            command = self._commands.get(words[0])
            if command is None:
                output, status = f'sh: {words[0]}: command not found\n', 127
            else:
                output, status = command(words[1:])
            text += output
            self._last_status = status
        out = text.replace('\n', '\r\n').encode()
        return out if self.exit_status is not None else out + self.prompt()

    def _path(self, name: str) -> str:
        return posixpath.normpath(posixpath.join(self.cwd, name))

    # -- the commands ----------------------------------------------------------------------

    def _help(self, args: List[str]) -> Tuple[str, int]:
        return 'commands: ' + ' '.join(COMMANDS) + '\n', 0

    def _echo(self, args: List[str]) -> Tuple[str, int]:
        return ' '.join(args) + '\n', 0

    def _pwd(self, args: List[str]) -> Tuple[str, int]:
        return self.cwd + '\n', 0

    def _cd(self, args: List[str]) -> Tuple[str, int]:
        path = self._path(args[0] if args else '/home/robot')
        if path not in self.files:
            return f'cd: {args[0]}: No such file or directory\n', 1
        if self.files[path] is not None:
            return f'cd: {args[0]}: Not a directory\n', 1
        self.cwd = path
        return '', 0

    def _ls(self, args: List[str]) -> Tuple[str, int]:
        path = self._path(args[0] if args else '.')
        if path not in self.files:
            return f'ls: cannot access {args[0]!r}: No such file or directory\n', 2
        if self.files[path] is not None:
            return posixpath.basename(path) + '\n', 0
        prefix = path.rstrip('/') + '/'
        names = sorted(p[len(prefix):] for p in self.files
                       if p.startswith(prefix) and '/' not in p[len(prefix):] and p != path)
        return ''.join(name + '\n' for name in names), 0

    def _cat(self, args: List[str]) -> Tuple[str, int]:
        out, status = '', 0
        for name in args:
            text = self.files.get(self._path(name), '')
            if self._path(name) not in self.files:
                out, status = out + f'cat: {name}: No such file or directory\n', 1
            elif text is None:
                out, status = out + f'cat: {name}: Is a directory\n', 1
            else:
                out += text
        return out, status

    def _hostname(self, args: List[str]) -> Tuple[str, int]:
        return self.name + '\n', 0

    def _stty(self, args: List[str]) -> Tuple[str, int]:
        if args == ['size']:
            return f'{self.rows} {self.cols}\n', 0
        return 'stty: only "stty size" here\n', 1

    def _uptime(self, args: List[str]) -> Tuple[str, int]:
        return f'up {max(0.0, self._now_s - self._started_s):.0f} s\n', 0

    def _exit(self, args: List[str]) -> Tuple[str, int]:
        try:
            status = int(args[0]) & 0xFF if args else self._last_status
        except ValueError:
            return f'exit: {args[0]}: numeric argument required\n', 2
        self.exit_status = status
        return '', status


__all__ = ['fake_filesystem', 'RobotShell']

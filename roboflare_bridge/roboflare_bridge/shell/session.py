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
One shell session: the robot's ``shell/ws`` joined to the local terminal, on asyncio.

Keystrokes go up as they are read (binary frames, through :class:`EscapeScanner`), the PTY's
output is written as it arrives, the window size goes up at start and on every SIGWINCH.
The session ends when the remote shell ends, the escape is typed, the connection is lost,
``timeout_s`` passes or SIGINT/SIGTERM arrive; :class:`Outcome` says which, with the exit
status the client returns. The terminal's mode is the caller's (cli.py): it is restored
whatever happens here.

With a command, the command line is typed into the remote shell followed by ``; exit`` (so
the shell ends with the command's status) and stdin is not read; the PTY's echo of that
line is not printed. When stdout is not a terminal, CRLF from the PTY becomes LF.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import IntEnum
import os
import signal
import threading
from typing import Any, Coroutine, Optional, Set

from websockets.exceptions import InvalidHandshake

from .escape import Action, EscapeScanner, help_text
from .terminal import Terminal
from ..transport.credentials import Token
from ..transport.streams import handshake_status, sent_close_code
from ..transport.websocket import Message, open_connection, WebSocketConnection
from ..transport.wire import encode_resize, MAX_SHELL_FRAME_BYTES, shell_exit_status

READ_CHUNK = 4096
ECHO_SEARCH_LIMIT = 64 << 10  # PTY output searched for the command's echo, at most
CLOSE_TIMEOUT_S = 2.0


class ExitStatus(IntEnum):
    """The client's exit statuses besides the remote shell's own (0-249)."""

    NO_CREDENTIALS = 249
    LEFT = 250  # the escape was typed
    NOT_FOUND = 251  # no such robot (404), or a name that names none or several
    REFUSED = 252  # the token was refused (401, 403)
    CONNECTION = 253  # the API or the stream could not be reached, or the link was lost
    TIMEOUT = 254  # --timeout passed
    INTERRUPTED = 128 + signal.SIGINT
    TERMINATED = 128 + signal.SIGTERM


EXIT_MEANINGS = {
    ExitStatus.NO_CREDENTIALS: 'no usable credentials',
    ExitStatus.LEFT: 'left by the escape',
    ExitStatus.NOT_FOUND: 'no such robot (or a name several robots share)',
    ExitStatus.REFUSED: 'token refused',
    ExitStatus.CONNECTION: 'the API or the stream unreachable, or the connection lost',
    ExitStatus.TIMEOUT: '--timeout passed',
    ExitStatus.INTERRUPTED: 'SIGINT',
    ExitStatus.TERMINATED: 'SIGTERM',
}


def exit_statuses() -> str:
    """Return what each exit status means, as --help and the README say it."""
    return ("the remote shell's own when it ends (0 when the server does not carry it); "
            + '; '.join(f'{int(status)} {meaning}' for status, meaning
                        in sorted(EXIT_MEANINGS.items())))


@dataclass(frozen=True)
class Outcome:
    """How a session ended: the exit status and a one-line reason (never the token)."""

    status: int
    reason: str
    remote_ended: bool = False  # the remote shell ended (not the client, not the link)


class ShellSession:
    """The stream and the terminal's bytes until one of them ends the session."""

    def __init__(self, terminal: Terminal, url: str, token: Token, robot: str, *,
                 command: Optional[str] = None, escape: Optional[str] = '~',
                 timeout_s: Optional[float] = None, connect_timeout_s: float = 10.0,
                 stderr_fd: int = 2) -> None:
        self.terminal = terminal
        self.url = url  # without the token
        self.robot = robot
        self._token = token
        self._command = command
        self._escape = escape
        self._scanner = EscapeScanner(escape)
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._stderr_fd = stderr_fd
        self._outgoing: 'asyncio.Queue[Message]' = asyncio.Queue()
        self._outcome: Optional['asyncio.Future[Outcome]'] = None
        self._connection: Optional[WebSocketConnection] = None
        # Command mode: output is held until the PTY has echoed the command line (from the
        # first frame on: a banner and a prompt may come before the line is even sent).
        self._line = f'{command}; exit'.encode() if command is not None else None
        self._echo: Optional[bytes] = self._line + b'\r\n' if self._line else None
        self._held = bytearray()
        self._cr_held = False  # a CR at the end of a chunk, when CRLF becomes LF
        self._tasks: Set[asyncio.Task] = set()

    async def run(self) -> Outcome:
        """Connect, join the stream to the terminal, and return how it ended."""
        loop = asyncio.get_running_loop()
        self._outcome = loop.create_future()
        # Signals and the timeout end the session from the start, connecting included.
        for signum, status in ((signal.SIGINT, ExitStatus.INTERRUPTED),
                               (signal.SIGTERM, ExitStatus.TERMINATED)):
            loop.add_signal_handler(signum, self._end, Outcome(
                status, f'{signal.Signals(signum).name} received: left the shell on '
                f'{self.robot}'))
        timer = None
        if self._timeout_s is not None:
            timer = loop.call_later(self._timeout_s, self._end, Outcome(
                ExitStatus.TIMEOUT, f'timed out after {self._timeout_s:g} s'))
        try:
            return await self._connected_session(loop)
        finally:
            if timer is not None:
                timer.cancel()
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGWINCH):
                loop.remove_signal_handler(signum)
            self._stop_reading_stdin(loop)
            for task in self._tasks:
                task.cancel()

    async def _connected_session(self, loop: asyncio.AbstractEventLoop) -> Outcome:
        assert self._outcome is not None
        if self.terminal.interactive and self._command is None:
            escape = f'{self._escape}.' if self._escape else 'none (--escape none)'
            self._to_stderr(f'Connecting to {self.robot}; to leave, type {escape} at the start '
                            'of a line.\r\n')
            self.terminal.enter_raw_mode()  # keystrokes typed meanwhile wait in the terminal
        opening = asyncio.ensure_future(open_connection(
            f'{self.url}?token={self._token.reveal()}', self._on_message,
            compression=True, max_size=MAX_SHELL_FRAME_BYTES,
            open_timeout_s=self._connect_timeout_s))
        outcome: 'asyncio.Future[Any]' = self._outcome
        await asyncio.wait({opening, outcome}, return_when=asyncio.FIRST_COMPLETED)
        if not opening.done():
            opening.cancel()
            return self._outcome.result()
        try:
            connection = opening.result()
        except InvalidHandshake as exc:
            return self._refused(handshake_status(exc), exc)
        except (OSError, asyncio.TimeoutError) as exc:
            detail = self._token.scrub(str(exc)) or type(exc).__name__
            return Outcome(ExitStatus.CONNECTION, f'cannot connect to {self.url}: {detail}')
        self._connection = connection
        self._start(self._send_outgoing(connection))
        self._send_window_size()
        loop.add_signal_handler(signal.SIGWINCH, self._send_window_size)
        if self._line is not None:
            self._outgoing.put_nowait(self._line + b'\r')
        else:
            self._read_stdin(loop)
        closed: 'asyncio.Future[Any]' = asyncio.ensure_future(connection.wait_closed())
        await asyncio.wait({closed, outcome}, return_when=asyncio.FIRST_COMPLETED)
        if outcome.done():
            if not closed.done():
                try:
                    await asyncio.wait_for(connection.close(), CLOSE_TIMEOUT_S)
                except asyncio.TimeoutError:
                    connection.abort()
            self._flush_output()
            return self._outcome.result()
        self._flush_output()
        return self._closed_outcome(connection)

    # -- how it ended --------------------------------------------------------------------

    def _refused(self, status: Optional[int], exc: Exception) -> Outcome:
        if status in (401, 403):
            return Outcome(ExitStatus.REFUSED, f'the server refused the token (HTTP {status})')
        if status == 404:
            return Outcome(ExitStatus.NOT_FOUND, f'no robot {self.robot} (HTTP 404)')
        detail = f'HTTP {status}' if status else self._token.scrub(str(exc))
        return Outcome(ExitStatus.CONNECTION, f'the shell stream was refused ({detail})')

    def _closed_outcome(self, connection: WebSocketConnection) -> Outcome:
        closed = connection.close_exc
        if connection.refused is not None or sent_close_code(closed) == 1009:
            refused = connection.refused
            detail = refused.detail if refused else f'a frame over {MAX_SHELL_FRAME_BYTES} bytes'
            return Outcome(ExitStatus.CONNECTION, f'connection closed (1009): {detail}')
        received = closed.rcvd
        if received is not None and received.code == 1000:
            status = shell_exit_status(received.code, received.reason)
            said = f' (exit {status})' if status is not None else ''
            return Outcome(status or 0, f'the shell on {self.robot} ended{said}',
                           remote_ended=True)
        how = f'code {received.code}' if received is not None else 'no close frame'
        return Outcome(ExitStatus.CONNECTION, f'connection to {self.robot} lost ({how})')

    def _end(self, outcome: Outcome) -> None:
        if self._outcome is not None and not self._outcome.done():
            self._outcome.set_result(outcome)

    # -- up: keystrokes and the window size ------------------------------------------------

    def _start(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_outgoing(self, connection: WebSocketConnection) -> None:
        """Send queued frames in order (one sender keeps keystrokes in the order typed)."""
        while True:
            message = await self._outgoing.get()
            try:
                await connection.send(message)
            except Exception:  # noqa: BLE001 - closing: the session ends by its close
                return

    def _send_window_size(self) -> None:
        self._outgoing.put_nowait(encode_resize(*self.terminal.size()))

    def _read_stdin(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            loop.add_reader(self.terminal.stdin_fd, self._on_stdin_ready)
        except (PermissionError, ValueError):  # a regular file: epoll cannot watch it
            threading.Thread(target=self._read_file, args=(loop,), daemon=True,
                             name='shell-stdin').start()

    def _stop_reading_stdin(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._command is None and self._connection is not None:
            try:
                loop.remove_reader(self.terminal.stdin_fd)
            except ValueError:
                pass

    def _on_stdin_ready(self) -> None:
        try:
            data = os.read(self.terminal.stdin_fd, READ_CHUNK)
        except OSError:
            data = b''
        self._typed(data)
        if not data:
            asyncio.get_running_loop().remove_reader(self.terminal.stdin_fd)

    def _read_file(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            data = os.read(self.terminal.stdin_fd, READ_CHUNK)
            loop.call_soon_threadsafe(self._typed, data)
            if not data:
                return

    def _typed(self, data: bytes) -> None:
        if not data:  # end of input: as ^D typed at the start of a line
            self._outgoing.put_nowait(b'\x04')
            return
        scanned = self._scanner.feed(data)
        if scanned.send:
            self._outgoing.put_nowait(scanned.send)
        if scanned.action is Action.HELP:
            self._to_stderr(help_text(self._escape or ''))
        elif scanned.action is Action.LEAVE:
            self._end(Outcome(ExitStatus.LEFT,
                              f'left the shell on {self.robot} ({self._escape}.)'))

    # -- down: the PTY's output -------------------------------------------------------------

    def _on_message(self, message: Message) -> None:
        if isinstance(message, str):
            return  # text frames from the server carry nothing for the terminal
        if self._echo is not None:
            self._held += message
            at = self._held.find(self._echo)
            if at < 0 and len(self._held) < ECHO_SEARCH_LIMIT:
                return
            message = bytes(self._held[at + len(self._echo):] if at >= 0 else self._held)
            self._echo, self._held = None, bytearray()
        self._write(message)

    def _flush_output(self) -> None:
        if self._held:  # the echo never came: show everything rather than nothing
            held, self._held, self._echo = bytes(self._held), bytearray(), None
            self._write(held)
        if self._cr_held:
            self._cr_held = False
            self.terminal.write(b'\r')

    def _write(self, data: bytes) -> None:
        if not self.terminal.output_is_terminal:  # a pipe or a file: lines end in LF
            if self._cr_held:
                data = b'\r' + data
            self._cr_held = data.endswith(b'\r')
            data = (data[:-1] if self._cr_held else data).replace(b'\r\n', b'\n')
        if data:
            self.terminal.write(data)

    def _to_stderr(self, text: str) -> None:
        try:
            os.write(self._stderr_fd, text.encode())
        except OSError:
            pass


__all__ = ['EXIT_MEANINGS', 'exit_statuses', 'ExitStatus', 'Outcome', 'ShellSession']

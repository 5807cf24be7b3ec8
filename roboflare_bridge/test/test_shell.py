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
"""The ``shell`` client: its escape, and sessions in a real pseudo-terminal on the emulator."""

import fcntl
import os
from pathlib import Path
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest
from roboflare_bridge.shell.escape import Action, EscapeScanner
from roboflare_bridge.shell.session import exit_statuses, ShellSession
from roboflare_bridge.shell.terminal import Terminal
from roboflare_bridge.transport.credentials import Token
from roboflare_bridge.transport.wire import encode_resize, shell_exit_status
from roboflare_dev.testing import EmulatorThread, wait_until_true

CLIENT = [sys.executable, '-m', 'roboflare_bridge.shell.cli']


# -- the escape and the wire, sans-I/O ------------------------------------------------------

def test_the_escape_leaves_only_at_the_start_of_a_line():
    scanner = EscapeScanner()
    assert scanner.feed(b'ls ~/maps\r') == (b'ls ~/maps\r', None)  # mid-line: a keystroke
    assert scanner.feed(b'~~') == (b'~', None)  # ~~ sends one
    assert scanner.feed(b'x\r~x') == (b'x\r~x', None)  # ~ then anything else: both go
    assert scanner.feed(b'\r~?') == (b'\r', Action.HELP)
    assert scanner.feed(b'~.more') == (b'', Action.LEAVE)  # still at the line's start
    split = EscapeScanner()
    assert split.feed(b'~') == (b'', None)  # held back until the next byte tells
    assert split.feed(b'.') == (b'', Action.LEAVE)
    assert EscapeScanner(None).feed(b'~.') == (b'~.', None)  # --escape none
    assert EscapeScanner('%').feed(b'%.') == (b'', Action.LEAVE)


def test_resize_frames_and_the_remote_exit_status():
    assert encode_resize(120, 40) == '{"type":"resize","cols":120,"rows":40}'
    assert shell_exit_status(1000, 'exit 3') == 3
    assert shell_exit_status(1000, '') is None  # a server that does not say it
    assert shell_exit_status(1011, 'exit 3') is None  # not the shell ending
    assert shell_exit_status(1000, 'exit 300') == 300 & 0xFF


# -- sessions ------------------------------------------------------------------------------

@pytest.fixture
def emulator():
    emu = EmulatorThread(robots=2)
    yield emu
    emu.close()


def client_env(emulator, token=None):
    env = dict(os.environ, ROBOFLARE_BASE_URL=emulator.url,
               ROBOFLARE_TOKEN=token or emulator.token)
    env.pop('ROBOFLARE_TOKEN_FILE', None)
    return env


def set_window_size(fd, cols, rows):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))


class PtyClient:
    """The client on a pseudo-terminal of its own (its controlling terminal), as a user runs it."""

    def __init__(self, emulator, *args, cols=100, rows=30, stdout=None):
        self.master, self.slave = os.openpty()
        set_window_size(self.slave, cols, rows)
        self.mode_before = termios.tcgetattr(self.slave)
        self.output = b''

        def take_terminal():  # in the child, after setsid: the slave becomes its terminal
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        self.proc = subprocess.Popen(
            CLIENT + list(args), stdin=self.slave, stdout=stdout or self.slave,
            stderr=stdout or self.slave,
            env=client_env(emulator), start_new_session=True, preexec_fn=take_terminal)

    def keys(self, text):
        os.write(self.master, text.encode())

    def read_until(self, text, timeout=15):
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.master], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError(f'{text!r} not seen; the terminal showed '
                                   f'{self.output[-500:]!r}')
            try:
                self.output += os.read(self.master, 65536)
            except OSError:  # the client has exited and closed its side
                raise TimeoutError(f'{text!r} not seen before the client exited; '
                                   f'{self.output[-500:]!r}') from None
        return self.output

    def wait(self, timeout=15):
        status = self.proc.wait(timeout)
        while select.select([self.master], [], [], 0)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.output += chunk
        return status

    def mode(self):
        return termios.tcgetattr(self.slave)

    def wait_raw(self):
        """Wait until the client has put its terminal in raw mode (just after connecting)."""
        wait_until_true(lambda: self.mode() != self.mode_before, 10, 'raw mode')
        return self.mode()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def pty_client(emulator):
    clients = []

    def start(*args, **kwargs):
        clients.append(PtyClient(emulator, *args, **kwargs))
        return clients[-1]
    yield start
    for client in clients:
        client.close()


def assert_no_token(emulator, *texts):
    for text in texts:
        assert emulator.token.encode() not in (text if isinstance(text, bytes) else
                                               text.encode())


def test_typing_resizing_and_leaving_by_the_escape(emulator, pty_client):
    client = pty_client('robot-1')  # a name, resolved through the API
    client.read_until('robot@robot-1:~$ ')
    raw = client.wait_raw()
    assert not raw[3] & termios.ECHO and not raw[3] & termios.ICANON  # the robot echoes
    client.read_until('to leave, type ~. at the start of a line')
    cmdline = open(f'/proc/{client.proc.pid}/cmdline', 'rb').read()
    assert_no_token(emulator, cmdline)
    # Keystrokes go up as typed; the PTY's echo and output come down.
    client.keys('echo hello\r')
    client.read_until('echo hello\r\nhello\r\n')
    client.keys('stty size\r')
    client.read_until('30 100\r\n')  # the size sent at start
    # A resize of the local terminal (SIGWINCH) reaches the robot's PTY.
    set_window_size(client.master, 120, 40)
    client.proc.send_signal(signal.SIGWINCH)  # as the kernel does for the foreground group
    wait_until_true(lambda: emulator.emulator.shell_sessions[-1].cols == 120, 10,
                    'the resize at the robot')
    client.keys('stty size\r')
    client.read_until('40 120\r\n')
    # ~ mid-line is a keystroke; ~. at the start of a line leaves.
    client.keys('echo ~x\r')
    client.read_until('~x\r\n')
    client.keys('\r~.')
    assert client.wait() == 250
    assert client.mode() == client.mode_before
    assert b'shell: left the shell on robot-1 (rbt_0001) (~.)' in client.output
    assert_no_token(emulator, client.output)


def test_the_remote_exit_ends_the_client_with_its_status(emulator, pty_client):
    client = pty_client('rbt_0002')
    client.read_until('$ ')
    client.keys('cat /etc/hostname\r')
    client.read_until('robot-2\r\n')
    client.keys('exit 7\r')
    assert client.wait() == 7
    assert client.mode() == client.mode_before
    assert b'the shell on rbt_0002 ended (exit 7)' in client.output


def test_a_dropped_connection_restores_the_terminal(emulator, pty_client):
    client = pty_client('rbt_0001')
    client.read_until('$ ')
    client.wait_raw()
    emulator.control('POST', '/_emulator/drop-streams')
    assert client.wait() == 253
    assert client.mode() == client.mode_before
    assert b'connection to rbt_0001 lost' in client.output


@pytest.mark.parametrize('signum, status', [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_to_the_client_restores_the_terminal(emulator, pty_client, signum, status):
    client = pty_client('rbt_0001')
    client.read_until('$ ')
    client.proc.send_signal(signum)
    assert client.wait() == status
    assert client.mode() == client.mode_before
    assert f'{signal.Signals(signum).name} received'.encode() in client.output


def test_with_stdout_not_a_terminal_the_terminal_is_left_alone(emulator, pty_client):
    client = pty_client('rbt_0001', stdout=subprocess.PIPE)  # `shell rbt_0001 | tee log`
    wait_until_true(lambda: len(emulator.emulator.shell_sessions) == 1, 10, 'a session')
    assert client.mode() == client.mode_before
    client.keys('echo lines\rexit 5\r')  # cooked: the local terminal sends whole lines
    assert client.wait() == 5
    assert client.mode() == client.mode_before
    assert b'lines\n' in client.proc.stdout.read()


def test_an_oversized_output_frame_ends_the_session_named_and_the_terminal_restored(
        emulator, pty_client):
    client = pty_client('rbt_0001')
    client.read_until('$ ')
    client.wait_raw()
    # A text frame from the server is ignored; a binary frame past 1 MiB ends the session.
    emulator.control('POST', '/_emulator/robots/rbt_0001/shell/ws/inject',
                     {'frames': ['{"type": "ignored"}'], 'jpeg_like_bytes': [2 << 20]})
    assert client.wait() == 253
    assert client.mode() == client.mode_before
    assert b'connection closed' in client.output and b'{"type"' not in client.output
    assert len(client.output) < 64 << 10  # nothing of the oversized frame was shown


def test_an_offline_robot_is_said_and_ends_the_client(emulator):
    emulator.control('POST', '/_emulator/robots/rbt_0002', {'status': 'offline'})
    offline = run_client(emulator, 'rbt_0002', '--', 'hostname')
    assert offline.returncode == 253 and b'HTTP 503' in offline.stderr


def test_output_held_for_a_command_echo_that_never_comes_is_bounded():
    reader, writer = os.pipe()
    fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, 1 << 20)  # room for all of it: nobody reads yet
    try:
        terminal = Terminal(stdin_fd=reader, stdout_fd=writer)
        session = ShellSession(terminal, 'ws://127.0.0.1:9/x', Token('rf_org_00'), 'r',
                               command='ls')
        session._on_message(b'p' * 1000)  # a banner: held, waiting for the echo
        assert not select.select([reader], [], [], 0)[0]
        session._on_message(b'q' * (64 << 10))  # past the search's bound: shown as it is
        shown = os.read(reader, 1 << 20)
        assert shown == b'p' * 1000 + b'q' * (64 << 10)
    finally:
        os.close(reader)
        os.close(writer)


def run_client(emulator, *args, token=None, stdin=subprocess.DEVNULL, timeout=30, **kwargs):
    return subprocess.run(CLIENT + list(args), env=client_env(emulator, token), stdin=stdin,
                          capture_output=True, timeout=timeout, **kwargs)


def test_a_command_in_a_pipe(emulator):
    done = run_client(emulator, 'robot-1', '--', 'echo', 'hi;', 'cat', '/etc/hostname')
    assert (done.returncode, done.stdout, done.stderr) == (0, b'hi\nrobot-1\n', b'')
    failed = run_client(emulator, 'rbt_0002', '--', 'ls', '/nowhere')
    assert failed.returncode == 2 and b'No such file or directory' in failed.stdout
    assert run_client(emulator, 'rbt_0002', '--', 'exit', '3').returncode == 3
    # No terminal and no command: stdin is typed in; its end ends the shell (^D).
    piped = run_client(emulator, 'rbt_0001', input=b'echo piped\n', stdin=None)
    assert piped.returncode == 0 and b'piped\n' in piped.stdout
    assert b'shell: the shell on rbt_0001 ended' in piped.stderr
    # A session that outlives --timeout ends with its own status.
    never_ends, keep_open = os.pipe()  # stdin that neither sends nor ends
    try:
        stalled = run_client(emulator, 'rbt_0001', '--timeout', '1', stdin=never_ends)
    finally:
        os.close(never_ends)
        os.close(keep_open)
    out, err = stalled.stdout, stalled.stderr
    assert stalled.returncode == 254 and b'timed out after 1 s' in err
    assert_no_token(emulator, done.stdout, failed.stdout, piped.stderr, out, err)


def test_unknown_robots_and_refused_tokens_say_so(emulator, tmp_path):
    unknown = run_client(emulator, 'rbt_9999')
    assert unknown.returncode == 251
    assert unknown.stderr == b"shell: no robot with the id or name 'rbt_9999' in this org\n"
    emulator.control('POST', '/_emulator/robots', {'name': 'robot-1'})  # a second robot-1
    ambiguous = run_client(emulator, 'robot-1')
    assert ambiguous.returncode == 251 and b'give an id' in ambiguous.stderr
    wrong = 'rf_org_' + '0' * 32
    refused = run_client(emulator, 'rbt_0001', token=wrong)
    assert refused.returncode == 252 and b'HTTP 401' in refused.stderr
    token_file = tmp_path / 'token'
    token_file.write_text(wrong)
    by_file = run_client(emulator, 'rbt_0001', '--token-file', str(token_file))
    assert by_file.returncode == 252
    malformed = run_client(emulator, 'rbt_0001', token='not-a-token')
    assert malformed.returncode == 249 and b'wrong shape' in malformed.stderr
    unreachable = subprocess.run(CLIENT + ['rbt_0001', '--base-url', 'http://127.0.0.1:9'],
                                 env=client_env(emulator), capture_output=True, timeout=60,
                                 stdin=subprocess.DEVNULL)
    assert unreachable.returncode == 253
    for done in (unknown, ambiguous, refused, by_file, malformed, unreachable):
        assert_no_token(emulator, done.stdout, done.stderr)
        assert wrong.encode() not in done.stderr and b'not-a-token' not in done.stderr


def test_the_readme_and_help_say_the_exit_statuses_as_the_client_has_them():
    readme = (Path(__file__).resolve().parents[2] / 'README.md').read_text()
    said = ' '.join(readme.split('Exit status: ', 1)[1].split('\n\n', 1)[0].split())
    assert said.rstrip('.') == exit_statuses()
    usage = subprocess.run(CLIENT + ['--help'], capture_output=True, text=True, timeout=30)
    assert ' '.join(exit_statuses().split()) in ' '.join(usage.stdout.split())

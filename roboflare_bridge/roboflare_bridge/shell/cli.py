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
``ros2 run roboflare_bridge shell ROBOT [-- COMMAND...]``: a shell on a remote robot.

ROBOT is an id or a name (as in the bridge's ``robots`` parameter, without globs), resolved
through the API. Credentials come as the bridge's do (``--base-url``, ``--token-file``,
``ROBOFLARE_TOKEN``, the Roboflare CLI's credentials.toml); the token is never taken on the
command line, so it never shows in the process list. Exit statuses: the remote shell's own
when it ends (0 when the server does not say it), else one of :class:`ExitStatus`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import List, Optional, Tuple

from .session import exit_statuses, ExitStatus, Outcome, ShellSession
from .terminal import Terminal
from ..control.api_client import ApiClient
from ..control.resources import ApiError
from ..fleet.selection import GLOB_CHARACTERS, matches
from ..transport.credentials import (
    check_base_url, Credentials, CredentialsError, DEFAULT_BASE_URL, resolve_credentials,
)
from ..transport.streams import websocket_url
from ..transport.wire import SHELL_STREAM


def parse_arguments(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='shell', description='Open a shell on a remote robot (its shell/ws stream).',
        epilog='Escapes, at the start of a line: ~. leaves, ~? lists them, ~~ sends ~. '
               f'Exit status: {exit_statuses()}.')
    parser.add_argument('robot', metavar='ROBOT', help='robot id or name')
    parser.add_argument('command', metavar='COMMAND', nargs='*',
                        help='after --: run this instead of an interactive shell, print its '
                             'output, exit with its status')
    parser.add_argument('--base-url', default='', help='Roboflare API base URL (default: as '
                        f'the bridge resolves it, else {DEFAULT_BASE_URL})')
    parser.add_argument('--token-file', default='', help='file holding the API token (else '
                        'ROBOFLARE_TOKEN, else credentials.toml)')
    parser.add_argument('--timeout', type=float, default=None, metavar='SECONDS',
                        help='end the session after this long')
    parser.add_argument('--escape', default='~', metavar='CHAR',
                        help='escape character, or "none" (default: ~)')
    args = parser.parse_args(argv)
    if args.escape != 'none' and len(args.escape) != 1:
        parser.error('--escape takes one character or "none"')
    if args.timeout is not None and args.timeout <= 0:
        parser.error('--timeout must be positive')
    return args


async def resolve_robot(credentials: Credentials, wanted: str) -> Tuple[str, str]:
    """Return (robot id, its display name), or raise LookupError saying why not."""
    async with ApiClient(credentials, max_attempts=2) as api:
        robots = await api.list_robots()
    if any(robot.id == wanted for robot in robots):
        return wanted, wanted
    if GLOB_CHARACTERS & set(wanted):
        raise LookupError(f'{wanted!r} is a glob: give one robot id or name')
    named = [robot for robot in robots if matches(wanted, robot)]
    if len(named) == 1:
        return named[0].id, f'{named[0].name} ({named[0].id})'
    if not named:
        raise LookupError(f'no robot with the id or name {wanted!r} in this org')
    ids = ', '.join(robot.id for robot in named[:10])
    raise LookupError(f'{len(named)} robots are named {wanted!r} ({ids}): give an id')


async def run(args: argparse.Namespace, terminal: Terminal) -> Outcome:
    try:
        credentials = resolve_credentials(args.base_url, args.token_file)
        check_base_url(credentials.base_url)
    except CredentialsError as exc:
        return Outcome(ExitStatus.NO_CREDENTIALS, str(exc))
    try:
        robot_id, shown = await resolve_robot(credentials, args.robot)
    except LookupError as exc:
        return Outcome(ExitStatus.NOT_FOUND, str(exc))
    except ApiError as exc:
        status = (ExitStatus.REFUSED if exc.status in (401, 403)
                  else ExitStatus.CONNECTION)
        return Outcome(status, f'cannot list the robots: {exc}')
    session = ShellSession(
        terminal, websocket_url(credentials.base_url, robot_id, SHELL_STREAM),
        credentials.token, shown, command=' '.join(args.command) if args.command else None,
        escape=None if args.escape == 'none' else args.escape, timeout_s=args.timeout)
    return await session.run()


def main(argv: Optional[List[str]] = None) -> int:
    """Open a shell on a remote robot; return the exit status."""
    args = parse_arguments(argv)
    terminal = Terminal()
    try:
        outcome = asyncio.run(run(args, terminal))
    except KeyboardInterrupt:  # before the session took SIGINT over
        outcome = Outcome(ExitStatus.INTERRUPTED, 'interrupted')
    finally:
        was_raw = terminal.raw
        terminal.restore()
    if not (args.command and outcome.remote_ended):  # a command that ran says nothing more
        newline = '\n' if was_raw else ''
        print(f'{newline}shell: {outcome.reason}', file=sys.stderr, flush=True)
    return int(outcome.status)


if __name__ == '__main__':
    sys.exit(main())

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
The Roboflare contract as the emulator implements it, written independently of the bridge.

The emulator is the bridge's test oracle: it must not judge what the bridge sends with the
bridge's own parsers, or a parser bug would be invisible end to end. So this module states
the contract (../shared/docs/contract.md) on its own: routes and headers, error codes,
statuses, stream names, and a strict validation of the log records that clients upload.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
import json
import re
from typing import Any, Dict

try:
    import orjson
except ImportError:  # optional, as for the bridge
    orjson = None

LOGS_STREAM = 'logs/ws'
CAMERA_STREAM = 'camera/ws'
ECHO_STREAM = 'ros/topics/echo'
SHELL_STREAM = 'shell/ws'

# shell/ws [assumed]: a text frame {"type": "resize", "cols", "rows"} sizes the PTY; when the
# shell ends the server closes with 1000 and the reason "exit <status>".
MAX_TERMINAL_CELLS = 10_000  # columns or rows in a resize frame


def parse_resize(text: str) -> Any:
    """Return (cols, rows) from a resize frame; None for anything else."""
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    if not isinstance(frame, dict) or frame.get('type') != 'resize':
        return None
    cols, rows = frame.get('cols'), frame.get('rows')
    if not all(isinstance(v, int) and not isinstance(v, bool)
               and 0 < v <= MAX_TERMINAL_CELLS for v in (cols, rows)):
        return None
    return cols, rows


def shell_exit_reason(status: int) -> str:
    return f'exit {status}'


ORG_ID_HEADER = 'X-Roboflare-Org-Id'
IDEMPOTENCY_HEADER = 'Idempotency-Key'
TOKEN_PATTERN = re.compile(r'rf_(org|user)_[0-9a-f]+')

TERMINAL_STATUSES = frozenset({'succeeded', 'failed', 'cancelled'})
DEPLOYMENT_STATUSES = frozenset({'pending', 'in_progress'}) | TERMINAL_STATUSES
_CODES = {400: 'bad_request', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found',
          409: 'conflict'}

LOG_LEVELS = frozenset({'debug', 'info', 'warn', 'error', 'fatal'})
MAX_BATCH_RECORDS = 500
# RFC 3339 in UTC, as the contract's times are: a fraction of up to nanoseconds, 'Z'.
_RFC3339_UTC = re.compile(r'(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d{1,9})?Z')


@dataclass(frozen=True)
class DeploymentKind:
    """A release or a config deployment: its route, its subject field, its name in errors."""

    name: str
    path: str
    subject_field: str


RELEASE_DEPLOYMENT = DeploymentKind('deployment', '/api/deployments', 'release_id')
CONFIG_DEPLOYMENT = DeploymentKind('config deployment', '/api/configs/deployments', 'config_id')


def error_code_for_status(status: int) -> str:
    """Return the error code the reference names for an HTTP status."""
    if status >= 500:
        return 'internal_server_error'
    return _CODES.get(status, 'http_error')


def format_time(sec: float) -> str:
    """Return seconds since the epoch as an RFC 3339 UTC string with milliseconds."""
    return datetime.fromtimestamp(sec, tz=timezone.utc).isoformat(
        timespec='milliseconds').replace('+00:00', 'Z')


def loads(data: Any) -> Any:
    """Parse JSON (raise ValueError)."""
    return orjson.loads(data) if orjson is not None else json.loads(data)


def dumps(obj: Any) -> str:
    """Serialise to compact JSON text."""
    if orjson is not None:
        return orjson.dumps(obj).decode()
    return json.dumps(obj, separators=(',', ':'), allow_nan=False)


class RecordError(ValueError):
    """An uploaded log record breaks the contract; the message says how."""


def validate_log_record(record: Any) -> Dict[str, Any]:
    """Return an uploaded log record as stored, or raise RecordError."""
    if not isinstance(record, dict):
        raise RecordError('a record must be a JSON object')
    for name in ('ts', 'level', 'logger', 'msg'):
        if not isinstance(record.get(name), str):
            raise RecordError(f'record field {name!r} must be a string')
    match = _RFC3339_UTC.fullmatch(record['ts'])
    if match is None:
        raise RecordError(f'record ts {record["ts"][:40]!r} is not an RFC 3339 UTC time')
    try:
        datetime(*(int(part) for part in match.groups()[:6]))
    except ValueError:
        raise RecordError(f'record ts {record["ts"][:40]!r} is not a valid date') from None
    if record['level'] not in LOG_LEVELS:
        raise RecordError(f'record level {record["level"][:20]!r} is not one of '
                          f'{sorted(LOG_LEVELS)}')
    for name in ('file', 'function'):
        if not isinstance(record.get(name, ''), str):
            raise RecordError(f'record field {name!r} must be a string')
    line = record.get('line', 0)
    if type(line) is not int or not 0 <= line < 2 ** 32:
        raise RecordError("record field 'line' must be an unsigned 32-bit integer")
    return {'ts': record['ts'], 'level': record['level'], 'logger': record['logger'],
            'msg': record['msg'], 'file': record.get('file', ''),
            'function': record.get('function', ''), 'line': line}


__all__ = ['CAMERA_STREAM', 'CONFIG_DEPLOYMENT', 'DEPLOYMENT_STATUSES', 'DeploymentKind',
           'ECHO_STREAM', 'IDEMPOTENCY_HEADER', 'LOGS_STREAM', 'MAX_BATCH_RECORDS',
           'ORG_ID_HEADER', 'RELEASE_DEPLOYMENT', 'RecordError', 'SHELL_STREAM',
           'TERMINAL_STATUSES', 'TOKEN_PATTERN', 'dumps', 'error_code_for_status',
           'format_time', 'loads', 'validate_log_record']

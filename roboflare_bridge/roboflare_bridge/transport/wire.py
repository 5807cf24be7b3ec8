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
WebSocket stream frames: every [assumed] stream shape of docs/contract.md section 2.

Pure functions, no transport. Parsers raise :class:`FrameError` with a precise reason, so a
bad frame is dropped alone and counted while the stream goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union
from urllib.parse import quote

from ..common import jsonutil

LOGS_STREAM = 'logs/ws'
CAMERA_STREAM = 'camera/ws'
ECHO_STREAM = 'ros/topics/echo'
SHELL_STREAM = 'shell/ws'

LOG_LEVELS = ('debug', 'info', 'warn', 'error', 'fatal')
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 1 << 20
# logs/ws frames from the server (a record, an ack): larger ones close the stream (1009).
# The contract bounds what the bridge sends to 1 MiB a frame; a record is far smaller.
MAX_LOG_FRAME_BYTES = 1 << 20
LOG_STREAM_LIMITS = {'max_frame_bytes': MAX_LOG_FRAME_BYTES,  # StreamClient's options
                     'frame_limit_name': 'the log frame limit'}
# A topics listing naming more is refused whole, before it is parsed: a robot's graph has
# hundreds of topics; a listing of a million would cost a publisher and a subscription each.
MAX_LISTED_TOPICS = 10_000
_LISTING_CHECKED_FROM = 64 << 10  # smaller frames cannot hold that many entries

JPEG_START = b'\xff\xd8'
JPEG_END = b'\xff\xd9'


class FrameError(ValueError):
    """A frame that breaks the contract; the reason names what is wrong."""


def stream_path(robot_id: str, stream: str) -> str:
    """Return the path of a robot's stream."""
    return f'/api/robots/{quote(robot_id, safe="")}/{stream}'


def parse_json_object(frame: Union[str, bytes]) -> Dict[str, Any]:
    """Parse a text frame holding one JSON object."""
    try:
        obj = jsonutil.loads(frame)
    except (ValueError, TypeError) as exc:
        raise FrameError(f'not JSON: {str(exc)[:80]}') from None
    if not isinstance(obj, dict):
        raise FrameError(f'expected a JSON object, got {type(obj).__name__}')
    return obj


# -- logs/ws -------------------------------------------------------------------------------

@dataclass(frozen=True)
class LogRecord:
    """One log record as logs/ws carries it."""

    ts: str
    level: str
    logger: str
    msg: str
    file: str = ''
    function: str = ''
    line: int = 0


def _str_field(obj: Mapping[str, Any], name: str, required: bool = False) -> str:
    value = obj.get(name)
    if value is None and not required:
        return ''
    if not isinstance(value, str):
        raise FrameError(f'log record field {name!r}: expected a string')
    return value


def parse_log_record(obj: Mapping[str, Any]) -> LogRecord:
    """Validate one log record object."""
    level = _str_field(obj, 'level', required=True).lower()
    if level == 'warning':
        level = 'warn'
    if level not in LOG_LEVELS:
        raise FrameError(f'log record level {level[:20]!r} is not one of {LOG_LEVELS}')
    line = obj.get('line', 0)
    if line is None:
        line = 0
    if not isinstance(line, int) or isinstance(line, bool) or not 0 <= line < 2 ** 32:
        raise FrameError('log record field line: expected an unsigned 32-bit integer')
    return LogRecord(ts=_str_field(obj, 'ts', required=True), level=level,
                     logger=_str_field(obj, 'logger'), msg=_str_field(obj, 'msg'),
                     file=_str_field(obj, 'file'), function=_str_field(obj, 'function'),
                     line=line)


def encode_batch(batch_id: str, records_json: Sequence[str]) -> str:
    """Return a batch frame from records already serialised as JSON objects."""
    records = ','.join(records_json)
    return f'{{"type":"batch","id":{jsonutil.dumps(batch_id)},"records":[{records}]}}'


@dataclass(frozen=True)
class BatchReply:
    """The server's answer to a batch: ``ok`` for an ack, else the error's code and message."""

    batch_id: str
    ok: bool
    code: str = ''
    message: str = ''


def parse_batch_reply(frame: Union[str, bytes]) -> Optional[BatchReply]:
    """Parse an ack or error frame; return None for a frame that is a log record."""
    obj = parse_json_object(frame)
    kind = obj.get('type')
    if kind is None:
        return None
    batch_id = obj.get('id')
    if not isinstance(batch_id, str):
        raise FrameError(f'{kind} frame without a string id')
    if kind == 'ack':
        return BatchReply(batch_id, True)
    if kind == 'error':
        error = obj.get('error')
        if not isinstance(error, dict):
            error = {}
        return BatchReply(batch_id, False, str(error.get('code', '')),
                          str(error.get('message', '')))
    raise FrameError(f'unknown frame type {str(kind)[:20]!r}')


# -- camera/ws -----------------------------------------------------------------------------

def check_jpeg(frame: bytes, max_bytes: int) -> None:
    """Raise FrameError unless ``frame`` looks like one complete JPEG of bounded size."""
    if not frame:
        raise FrameError('empty camera frame')
    if len(frame) > max_bytes:
        raise FrameError(f'camera frame of {len(frame)} bytes exceeds {max_bytes}')
    if not frame.startswith(JPEG_START):
        raise FrameError('camera frame does not start with a JPEG SOI marker')
    if not frame.rstrip(b'\x00').endswith(JPEG_END):
        raise FrameError('camera frame does not end with a JPEG EOI marker (truncated?)')


# -- ros/topics/echo -----------------------------------------------------------------------

def subscribe_op(topic: str, throttle_ms: int = 0) -> str:
    op: Dict[str, Any] = {'op': 'subscribe', 'topic': topic}
    if throttle_ms > 0:
        op['throttle_ms'] = throttle_ms
    return jsonutil.dumps(op)


def unsubscribe_op(topic: str) -> str:
    return jsonutil.dumps({'op': 'unsubscribe', 'topic': topic})


LIST_TOPICS_OP = '{"op":"list_topics"}'


@dataclass(frozen=True)
class EchoMessage:
    topic: str
    type: str  # noqa: A003 - the contract's field name
    msg: Dict[str, Any]


@dataclass(frozen=True)
class EchoTopics:
    topics: List[Dict[str, str]]


@dataclass(frozen=True)
class EchoStatus:
    level: str
    msg: str
    topic: str


def _too_many_topics(count: int) -> FrameError:
    return FrameError(f'a frame of {count} topic entries, over the {MAX_LISTED_TOPICS} a '
                      'topics listing may hold: refused')


def parse_echo_frame(frame: Union[str, bytes]) -> Union[EchoMessage, EchoTopics, EchoStatus]:
    """Parse a server -> client frame of ros/topics/echo."""
    if isinstance(frame, bytes):
        raise FrameError('binary frame on the topic echo stream')
    if len(frame) > _LISTING_CHECKED_FROM:  # a huge listing is refused before it is parsed
        entries = frame.count('"topic"')
        if entries > MAX_LISTED_TOPICS:
            raise _too_many_topics(entries)
    obj = parse_json_object(frame)
    op = obj.get('op')
    if op == 'message':
        topic, type_name, msg = obj.get('topic'), obj.get('type'), obj.get('msg')
        if not isinstance(topic, str) or not topic.startswith('/'):
            raise FrameError('message frame: topic must be an absolute name')
        if not isinstance(type_name, str):
            raise FrameError(f'message frame on {topic}: type must be a string')
        if not isinstance(msg, dict):
            raise FrameError(f'message frame on {topic}: msg must be an object')
        return EchoMessage(topic, type_name, msg)
    if op == 'topics':
        topics = obj.get('topics')
        if isinstance(topics, list) and len(topics) > MAX_LISTED_TOPICS:
            raise _too_many_topics(len(topics))
        if not isinstance(topics, list) or not all(
                isinstance(t, dict) and isinstance(t.get('topic'), str)
                and isinstance(t.get('type'), str) for t in topics):
            raise FrameError('topics frame: expected [{"topic", "type"}, ...]')
        return EchoTopics([{'topic': t['topic'], 'type': t['type']} for t in topics])
    if op == 'status':
        return EchoStatus(str(obj.get('level', '')), str(obj.get('msg', '')),
                          str(obj.get('topic', '')))
    raise FrameError(f'unknown op {str(op)[:20]!r}')


# -- shell/ws ------------------------------------------------------------------------------
# Keystrokes and PTY output are binary frames [ref]. [assumed] The window size goes up as a
# text frame {"type": "resize", "cols", "rows"}; when the remote shell ends the server closes
# with 1000, and a reason "exit <status>" carries its exit status (a server that gives no
# reason: status unknown).

MAX_SHELL_FRAME_BYTES = 1 << 20  # PTY output frames; larger ones close the stream (1009)
_SHELL_EXIT = re.compile(r'exit (\d{1,3})')


def encode_resize(cols: int, rows: int) -> str:
    """Return the frame that sets the remote PTY's window size."""
    return jsonutil.dumps({'type': 'resize', 'cols': cols, 'rows': rows})


def shell_exit_status(close_code: Optional[int], reason: str) -> Optional[int]:
    """Return the remote shell's exit status from the server's close, if it says one."""
    if close_code != 1000:
        return None
    match = _SHELL_EXIT.fullmatch(reason.strip())
    return int(match.group(1)) & 0xFF if match else None

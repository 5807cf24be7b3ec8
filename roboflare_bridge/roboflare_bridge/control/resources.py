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
The control plane's HTTP resources and error codes: every [assumed] HTTP shape lives here.

Aligning the bridge with the live ``/openapi.json`` is a change to this module only
(docs/contract.md, section 1). :data:`ROUTES_USED` declares what the bridge relies on:
each route the client calls, its envelope, and each field the parsers read, with its JSON
type and whether the parser needs it; contract_check.py holds a live spec against it, and the
tests hold the parsers and the client to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, FrozenSet, Mapping, Optional, Sequence, Tuple, Union

from roboflare_interfaces.msg import Deployment as DeploymentMessage

# Deployment statuses: the interface's constants are the contract's words.
SUCCEEDED = DeploymentMessage.STATUS_SUCCEEDED
FAILED = DeploymentMessage.STATUS_FAILED
CANCELLED = DeploymentMessage.STATUS_CANCELLED
TERMINAL_STATUSES = frozenset({SUCCEEDED, FAILED, CANCELLED})
DEPLOYMENT_STATUSES = frozenset({DeploymentMessage.STATUS_PENDING,
                                 DeploymentMessage.STATUS_IN_PROGRESS}) | TERMINAL_STATUSES
# A robot's status while the control plane does not hear from it (else "online").
ROBOT_OFFLINE = 'offline'
ROBOT_STATUSES = frozenset({'online', ROBOT_OFFLINE})

# The API's error codes [ref]; the HTTP status mapping is assumed.
BAD_REQUEST = 'bad_request'
UNAUTHORIZED = 'unauthorized'
FORBIDDEN = 'forbidden'
NOT_FOUND = 'not_found'
CONFLICT = 'conflict'
HTTP_ERROR = 'http_error'
INTERNAL_SERVER_ERROR = 'internal_server_error'
ERROR_CODE_BY_STATUS = {400: BAD_REQUEST, 401: UNAUTHORIZED, 403: FORBIDDEN, 404: NOT_FOUND,
                        409: CONFLICT}
# Transport failures, added by the bridge to the API's codes.
TIMEOUT = 'timeout'
UNAVAILABLE = 'unavailable'
ORG_ID_HEADER = 'X-Roboflare-Org-Id'
IDEMPOTENCY_HEADER = 'Idempotency-Key'


@dataclass(frozen=True)
class FieldUse:
    """
    A field a parser reads: its JSON Schema type and whether the parser needs it.

    ``items`` is an array's element (a JSON type, or a resource); ``known`` the enum values
    the bridge knows (others are kept as text and shown).
    """

    name: str
    kind: str
    required: bool = False
    items: Union[str, 'ResourceUse', None] = None
    known: FrozenSet[str] = frozenset()


@dataclass(frozen=True)
class ResourceUse:
    name: str
    fields: Tuple[FieldUse, ...]


@dataclass(frozen=True)
class RouteUse:
    """A route the client calls: ``envelope`` is ``items`` (a list) or ``data`` (one)."""

    method: str
    path: str
    envelope: str
    resource: ResourceUse
    idempotent: bool = False  # sends an Idempotency-Key: the spec must declare it

    @property
    def name(self) -> str:
        return f'{self.method} {self.path}'


_TIME_FIELD = 'string'  # RFC 3339 text
ROBOT_USE = ResourceUse('Robot', (
    FieldUse('id', 'string', required=True), FieldUse('name', 'string'),
    FieldUse('status', 'string', known=ROBOT_STATUSES), FieldUse('last_seen_at', _TIME_FIELD)))
RELEASE_USE = ResourceUse('Release', (
    FieldUse('id', 'string', required=True), FieldUse('name', 'string'),
    FieldUse('version', 'string'), FieldUse('created_at', _TIME_FIELD)))
CONFIG_USE = ResourceUse('Config', (
    FieldUse('id', 'string', required=True), FieldUse('name', 'string'),
    FieldUse('version', 'string'), FieldUse('content', 'string'),
    FieldUse('content_type', 'string'), FieldUse('created_at', _TIME_FIELD)))
ROBOT_STATE_USE = ResourceUse('RobotState', (
    FieldUse('robot_id', 'string', required=True),
    FieldUse('status', 'string', required=True, known=DEPLOYMENT_STATUSES),
    FieldUse('message', 'string')))


def _deployment_use(name: str, subject_field: str) -> ResourceUse:
    return ResourceUse(name, (
        FieldUse('id', 'string', required=True), FieldUse(subject_field, 'string'),
        FieldUse('robot_ids', 'array', items='string'),
        FieldUse('status', 'string', required=True, known=DEPLOYMENT_STATUSES),
        FieldUse('progress', 'number'), FieldUse('message', 'string'),
        FieldUse('robots', 'array', items=ROBOT_STATE_USE),
        FieldUse('created_at', _TIME_FIELD), FieldUse('updated_at', _TIME_FIELD)))


DEPLOYMENT_USE = _deployment_use('Deployment', 'release_id')
CONFIG_DEPLOYMENT_USE = _deployment_use('ConfigDeployment', 'config_id')


def error_code_for_status(status: int) -> str:
    """Return the API's error code for an HTTP status."""
    if status >= 500:
        return INTERNAL_SERVER_ERROR
    return ERROR_CODE_BY_STATUS.get(status, HTTP_ERROR)


class MalformedResource(ValueError):
    """A response body does not have the shape this module expects."""


def _field(obj: Mapping[str, Any], name: str, kind: type, default: Any = None) -> Any:
    value = obj.get(name, default)
    if value is None and default is not None:
        return default
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise MalformedResource(f'field {name!r}: expected {kind.__name__}, '
                                f'got {type(value).__name__}')
    return value


def parse_time(value: Any) -> Tuple[int, int]:
    """Return an RFC 3339 time as (seconds, nanoseconds) since the epoch; '' or null is 0."""
    if value in (None, ''):
        return (0, 0)
    if not isinstance(value, str):
        raise MalformedResource(f'time: expected an RFC 3339 string, got {type(value).__name__}')
    try:
        parsed = datetime.fromisoformat(value.replace('Z', '+00:00'))
    except ValueError:
        raise MalformedResource(f'time: not RFC 3339: {value[:40]!r}') from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    delta = parsed - datetime(1970, 1, 1, tzinfo=timezone.utc)
    seconds = delta.days * 86400 + delta.seconds
    return (seconds, delta.microseconds * 1000)


def format_time(sec: float) -> str:
    """Return seconds since the epoch as an RFC 3339 UTC string with milliseconds."""
    return datetime.fromtimestamp(sec, tz=timezone.utc).isoformat(
        timespec='milliseconds').replace('+00:00', 'Z')


@dataclass(frozen=True)
class Robot:
    id: str  # noqa: A003 - the contract's field name
    name: str
    status: str
    last_seen_at: Tuple[int, int]

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> 'Robot':
        return cls(id=_field(obj, 'id', str), name=_field(obj, 'name', str, ''),
                   status=_field(obj, 'status', str, ''),
                   last_seen_at=parse_time(obj.get('last_seen_at')))


@dataclass(frozen=True)
class Release:
    id: str  # noqa: A003 - the contract's field name
    name: str
    version: str
    created_at: Tuple[int, int]

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> 'Release':
        return cls(id=_field(obj, 'id', str), name=_field(obj, 'name', str, ''),
                   version=_field(obj, 'version', str, ''),
                   created_at=parse_time(obj.get('created_at')))


@dataclass(frozen=True)
class Config:
    id: str  # noqa: A003 - the contract's field name
    name: str
    version: str
    content: str
    content_type: str
    created_at: Tuple[int, int]

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> 'Config':
        return cls(id=_field(obj, 'id', str), name=_field(obj, 'name', str, ''),
                   version=_field(obj, 'version', str, ''),
                   content=_field(obj, 'content', str, ''),
                   content_type=_field(obj, 'content_type', str, ''),
                   created_at=parse_time(obj.get('created_at')))


@dataclass(frozen=True)
class RobotState:
    robot_id: str
    status: str
    message: str

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> 'RobotState':
        return cls(robot_id=_field(obj, 'robot_id', str), status=_field(obj, 'status', str),
                   message=_field(obj, 'message', str, ''))


@dataclass(frozen=True)
class DeploymentKind:
    """What is deployed (a release or a config): its routes and its subject field."""

    name: str
    path: str
    subject_field: str


RELEASE_DEPLOYMENT = DeploymentKind('deployment', '/api/deployments', 'release_id')
CONFIG_DEPLOYMENT = DeploymentKind('config deployment', '/api/configs/deployments', 'config_id')
DEPLOYMENT_USES = {RELEASE_DEPLOYMENT: DEPLOYMENT_USE, CONFIG_DEPLOYMENT: CONFIG_DEPLOYMENT_USE}

OPENAPI_PATH = '/openapi.json'
ROUTES_USED: Tuple[RouteUse, ...] = (
    RouteUse('GET', '/api/robots', 'items', ROBOT_USE),
    RouteUse('GET', '/api/robots/{id}', 'data', ROBOT_USE),
    RouteUse('GET', '/api/releases', 'items', RELEASE_USE),
    RouteUse('GET', '/api/releases/{id}', 'data', RELEASE_USE),
    RouteUse('GET', '/api/configs', 'items', CONFIG_USE),
    RouteUse('GET', '/api/configs/{id}', 'data', CONFIG_USE),
) + tuple(route for kind, use in DEPLOYMENT_USES.items() for route in (
    RouteUse('GET', kind.path, 'items', use),
    RouteUse('GET', kind.path + '/{id}', 'data', use),
    RouteUse('POST', kind.path, 'data', use, idempotent=True),
    RouteUse('POST', kind.path + '/{id}/cancel', 'data', use)))


@dataclass(frozen=True)
class Deployment:
    """A deployment or config deployment; ``subject_id`` is its release_id or config_id."""

    kind: DeploymentKind
    id: str  # noqa: A003 - the contract's field name
    subject_id: str
    robot_ids: Tuple[str, ...]
    status: str
    progress: float
    message: str
    robots: Tuple[RobotState, ...]
    created_at: Tuple[int, int]
    updated_at: Tuple[int, int]

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], kind: DeploymentKind) -> 'Deployment':
        robot_ids = _field(obj, 'robot_ids', list, [])
        robots = _field(obj, 'robots', list, [])
        if not all(isinstance(r, str) for r in robot_ids):
            raise MalformedResource("field 'robot_ids': expected a list of strings")
        if not all(isinstance(r, dict) for r in robots):
            raise MalformedResource("field 'robots': expected a list of objects")
        return cls(kind=kind, id=_field(obj, 'id', str),
                   subject_id=_field(obj, kind.subject_field, str, ''),
                   robot_ids=tuple(robot_ids), status=_field(obj, 'status', str),
                   progress=_field(obj, 'progress', float, 0.0),
                   message=_field(obj, 'message', str, ''),
                   robots=tuple(RobotState.from_json(r) for r in robots),
                   created_at=parse_time(obj.get('created_at')),
                   updated_at=parse_time(obj.get('updated_at')))


@dataclass
class ApiError(Exception):
    """
    Every failure of a control-plane call: an API error envelope or a transport failure.

    ``code`` is one of the API's codes, or ``timeout`` / ``unavailable``; ``status`` is the
    HTTP status (0 when no response arrived). The message never contains the token.
    """

    code: str
    message: str
    status: int = 0
    org_id: str = ''
    retry_after: Optional[float] = field(default=None, repr=False)

    def __str__(self) -> str:
        where = f'HTTP {self.status}' if self.status else 'no response'
        return f'{self.code}: {self.message} ({where})'


def parse_error_envelope(status: int, body: Any) -> Tuple[str, str]:
    """Return (code, message) from an error body, falling back on the status."""
    if isinstance(body, dict) and isinstance(body.get('error'), dict):
        error = body['error']
        code, message = error.get('code'), error.get('message')
        if isinstance(code, str) and code:
            return code, message if isinstance(message, str) else ''
    return error_code_for_status(status), f'HTTP {status} without an error envelope'


def unwrap_items(body: Any) -> Sequence[Mapping[str, Any]]:
    """Return the ``items`` of a list envelope."""
    if not isinstance(body, dict) or not isinstance(body.get('items'), list):
        raise MalformedResource('expected a list envelope {"items": [...]}')
    if not all(isinstance(item, dict) for item in body['items']):
        raise MalformedResource('list envelope items must be objects')
    return body['items']


def unwrap_data(body: Any) -> Mapping[str, Any]:
    """Return the ``data`` of a single-object envelope."""
    if not isinstance(body, dict) or not isinstance(body.get('data'), dict):
        raise MalformedResource('expected a single-object envelope {"data": {...}}')
    return body['data']

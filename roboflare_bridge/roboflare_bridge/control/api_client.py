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
Asyncio client of the Roboflare HTTP control plane (httpx).

Envelopes are unwrapped, every failure becomes one :class:`ApiError`, and requests that are
safe to repeat (GETs, and POSTs carrying an Idempotency-Key) are retried with backoff and
jitter on transport errors, 5xx and 429 (honouring Retry-After), within a deadline.
A response body is read as it arrives and refused past :data:`MAX_RESPONSE_BYTES`
(decompressed bytes, inflated in bounded steps): a huge or endless answer, or a gzip bomb,
is never held in memory.

:meth:`ApiClient.check_contract` holds the live ``/openapi.json`` against what the bridge
uses (contract_check.py) and adopts what it can absorb: list calls follow the pagination the
spec declares (and wait for a check in progress, so that none reads only a first page).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar
from urllib.parse import quote
import uuid
import zlib

import httpx

from .contract_check import check_document, Pagination, Report
from .resources import (
    ApiError, Config, CONFIG_DEPLOYMENT, Deployment, DeploymentKind, IDEMPOTENCY_HEADER,
    INTERNAL_SERVER_ERROR, MalformedResource, OPENAPI_PATH, ORG_ID_HEADER,
    parse_error_envelope, Release, RELEASE_DEPLOYMENT, Robot, TIMEOUT, UNAVAILABLE,
    unwrap_data, unwrap_items,
)
from ..common import jsonutil
from ..transport.backoff import Backoff
from ..transport.credentials import Credentials, Token

_log = logging.getLogger(__name__)
T = TypeVar('T')

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_PAGES = 10_000  # a list that pages on past this is taken for a server looping
MAX_RESPONSE_BYTES = 32 << 20  # a page of 100,000 robots, or a config file of tens of MB
# Only what read_body can inflate in bounded steps (httpx would also offer br and zstd when
# their packages are installed, and inflate each network read whole).
ACCEPT_ENCODING = 'gzip, deflate'


class ResponseTooLarge(Exception):
    """A response body over the limit (the message says so), and the response's status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


async def read_body(response: httpx.Response, limit: int = MAX_RESPONSE_BYTES) -> bytes:
    """
    Return a streamed response's body, decompressed; raise ResponseTooLarge past ``limit``.

    A declared Content-Length over the limit is refused before anything is read.
    """
    if response.is_stream_consumed:  # a transport read it already (httpx.MockTransport)
        if len(response.content) > limit:
            raise _too_large(response, limit)
        return response.content
    declared = response.headers.get('Content-Length', '')
    encoding = response.headers.get('Content-Encoding', 'identity').strip().lower()
    inflater: Optional['zlib._Decompress'] = None
    if encoding in ('gzip', 'x-gzip'):
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == 'deflate':
        inflater = zlib.decompressobj(zlib.MAX_WBITS)
    elif encoding not in ('', 'identity'):
        raise httpx.DecodingError(f'unsupported Content-Encoding {encoding[:20]!r}')
    elif declared.isdigit() and int(declared) > limit:
        raise _too_large(response, limit, f' ({int(declared)} bytes declared)')
    body = bytearray()
    try:
        async for raw in response.aiter_raw():
            if inflater is None:
                body += raw
            else:  # at most what is left of the limit, and a byte to tell it is over
                body += inflater.decompress(raw, limit - len(body) + 1)
                if inflater.unconsumed_tail:
                    raise _too_large(response, limit)
            if len(body) > limit:
                raise _too_large(response, limit)
    except zlib.error as exc:
        raise httpx.DecodingError(f'bad {encoding} data: {exc}') from None
    return bytes(body)


def _too_large(response: httpx.Response, limit: int, declared: str = '') -> ResponseTooLarge:
    return ResponseTooLarge(f'response over the {limit} bytes a response may hold{declared}: '
                            'refused', response.status_code)


async def send_bounded(http: httpx.AsyncClient,
                       request: httpx.Request) -> Tuple[httpx.Response, bytes]:
    """Send ``request``; return the response and its body, read within MAX_RESPONSE_BYTES."""
    response = await http.send(request, stream=True)
    try:
        return response, await read_body(response)
    finally:
        await response.aclose()


def parse_json(content: bytes) -> Any:
    """Return the JSON in a response body, or None if it holds none."""
    if not content:
        return None
    try:
        return jsonutil.loads(content)
    except (ValueError, TypeError):
        return None


def transport_error(exc: httpx.TransportError, what: str, timeout_s: float,
                    token: Optional[Token], org_id: str = '') -> ApiError:
    """Return the ApiError of a request that got no response (``timeout``/``unavailable``)."""
    if isinstance(exc, httpx.TimeoutException):
        return ApiError(TIMEOUT, f'{what}: no answer within {timeout_s:.1f}s', 0, org_id)
    # httpx transport errors never carry request headers, but scrub anyway.
    reason = (token.scrub(str(exc)) if token else str(exc)) or type(exc).__name__
    return ApiError(UNAVAILABLE, f'{what}: {reason}', 0, org_id)


async def fetch_openapi(http: httpx.AsyncClient, token: Optional[Token],
                        timeout_s: float) -> Any:
    """
    Return the parsed ``/openapi.json``; raise ApiError (the token scrubbed).

    It is asked for without the token (the contract says it is public), then with it if the
    server refuses that.
    """
    response = None
    content = b''
    for attempt in ('anonymous', 'token'):
        request = http.build_request('GET', OPENAPI_PATH, timeout=timeout_s)
        request.headers.pop('Authorization', None)
        request.headers['Accept-Encoding'] = ACCEPT_ENCODING
        if attempt == 'token':
            if token is None or response is None or response.status_code not in (401, 403):
                break
            request.headers['Authorization'] = f'Bearer {token.reveal()}'
        try:
            response, content = await send_bounded(http, request)
        except httpx.TransportError as exc:  # timeouts included
            raise transport_error(exc, f'GET {OPENAPI_PATH}', timeout_s, token) from None
        except (ResponseTooLarge, httpx.DecodingError) as exc:
            raise ApiError(INTERNAL_SERVER_ERROR, f'GET {OPENAPI_PATH}: {exc}',
                           getattr(exc, 'status', 0)) from None
    assert response is not None
    body = parse_json(content)
    if not response.is_success:
        code, message = parse_error_envelope(response.status_code, body)
        raise ApiError(code, token.scrub(message) if token else message, response.status_code)
    if body is None:
        raise ApiError(INTERNAL_SERVER_ERROR, f'GET {OPENAPI_PATH}: not JSON',
                       response.status_code)
    return body


class ApiClient:
    """
    The control plane's routes as coroutines; one instance per event loop.

    Other threads (diagnostics) read only counters and :attr:`contract`, a report that is
    replaced whole when a check ends.
    """

    def __init__(self, credentials: Credentials, request_timeout_s: float = 10.0,
                 max_attempts: int = 4, backoff_initial_s: float = 0.2,
                 backoff_cap_s: float = 5.0, verify_tls: bool = True,
                 transport: Optional[httpx.AsyncBaseTransport] = None) -> None:
        self.base_url = credentials.base_url
        self._token = credentials.token
        self.request_timeout_s = request_timeout_s
        self.max_attempts = max_attempts
        self._backoff_args = (backoff_initial_s, backoff_cap_s)
        self.org_id = ''
        self.token_rejected = False  # the last answer was 401
        self.requests_sent = 0
        self.retries = 0
        self.responses_refused = 0  # bodies over MAX_RESPONSE_BYTES, or undecodable
        self.contract: Optional[Report] = None  # the last check of /openapi.json
        self.pagination: Dict[str, Pagination] = {}  # list route -> how it pages
        self._checking: Optional[asyncio.Event] = None  # set once a check has finished
        self._http = httpx.AsyncClient(
            base_url=self.base_url, verify=verify_tls, transport=transport,
            timeout=httpx.Timeout(request_timeout_s),
            headers={'Authorization': f'Bearer {credentials.token.reveal()}',
                     'Accept': 'application/json', 'Accept-Encoding': ACCEPT_ENCODING,
                     'User-Agent': 'roboflare-bridge/0.1'})

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> 'ApiClient':
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def check_contract(self) -> Report:
        """Check the live /openapi.json; adopt its pagination; never raise for the spec."""
        checking = self._checking = asyncio.Event()
        try:
            document = await fetch_openapi(self._http, self._token, self.request_timeout_s)
            report = check_document(document)
        except ApiError as exc:
            report = Report(error=f'cannot fetch {OPENAPI_PATH}: {exc}')
        finally:
            checking.set()
        if not report.error:
            self.pagination = report.pagination
        self.contract = report
        return report

    async def watch_contract(self, retry_initial_s: float = 5.0,
                             retry_cap_s: float = 300.0) -> Report:
        """Check the contract until the spec can be read; log the result once."""
        backoff = Backoff(retry_initial_s, retry_cap_s)
        logged = ''
        while True:
            report = await self.check_contract()
            if not report.error:
                break
            if report.error != logged:  # each new reason once, not every retry
                logged = report.error
                _log.warning('API contract %s; retrying', report.summary())
            await asyncio.sleep(backoff.next_delay())
        log = _log.info if not report.differences else _log.warning
        log('API contract against %s%s: %s', self.base_url, OPENAPI_PATH,
            '\n  '.join(report.lines()))
        return report

    # -- routes ---------------------------------------------------------------------------

    async def list_robots(self) -> List[Robot]:
        return await self._list('/api/robots', Robot.from_json)

    async def get_robot(self, robot_id: str) -> Robot:
        return self._data(await self._request('GET', f'/api/robots/{_seg(robot_id)}'),
                          Robot.from_json)

    async def list_releases(self) -> List[Release]:
        return await self._list('/api/releases', Release.from_json)

    async def get_release(self, release_id: str) -> Release:
        return self._data(await self._request('GET', f'/api/releases/{_seg(release_id)}'),
                          Release.from_json)

    async def list_configs(self) -> List[Config]:
        return await self._list('/api/configs', Config.from_json)

    async def get_config(self, config_id: str) -> Config:
        return self._data(await self._request('GET', f'/api/configs/{_seg(config_id)}'),
                          Config.from_json)

    async def list_deployments(self, kind: DeploymentKind = RELEASE_DEPLOYMENT,
                               robot_id: str = '', status: str = '') -> List[Deployment]:
        params = {k: v for k, v in (('robot_id', robot_id), ('status', status)) if v}
        return await self._list(kind.path, lambda obj: Deployment.from_json(obj, kind), params)

    async def get_deployment(self, deployment_id: str,
                             kind: DeploymentKind = RELEASE_DEPLOYMENT) -> Deployment:
        body = await self._request('GET', f'{kind.path}/{_seg(deployment_id)}')
        return self._data(body, lambda obj: Deployment.from_json(obj, kind))

    async def create_deployment(self, subject_id: str, robot_ids: Sequence[str],
                                kind: DeploymentKind = RELEASE_DEPLOYMENT,
                                idempotency_key: Optional[str] = None,
                                deadline: Optional[float] = None) -> Deployment:
        """POST a deployment; a replay with the same key returns the same deployment."""
        body = await self._request(
            'POST', kind.path, json={kind.subject_field: subject_id, 'robot_ids': list(robot_ids)},
            idempotency_key=idempotency_key or str(uuid.uuid4()), deadline=deadline)
        return self._data(body, lambda obj: Deployment.from_json(obj, kind))

    async def cancel_deployment(self, deployment_id: str,
                                kind: DeploymentKind = RELEASE_DEPLOYMENT) -> Deployment:
        body = await self._request('POST', f'{kind.path}/{_seg(deployment_id)}/cancel')
        return self._data(body, lambda obj: Deployment.from_json(obj, kind))

    async def list_config_deployments(self, robot_id: str = '',
                                      status: str = '') -> List[Deployment]:
        return await self.list_deployments(CONFIG_DEPLOYMENT, robot_id, status)

    # -- mechanics ------------------------------------------------------------------------

    async def _list(self, path: str, parse: Callable[[Mapping[str, Any]], T],
                    params: Optional[Dict[str, str]] = None) -> List[T]:
        """GET a list, every page of it when the spec declares pagination."""
        if self._checking is not None:
            await self._checking.wait()  # the check says whether lists page
        paging = self.pagination.get(path)
        params = dict(params or {})
        items: List[T] = []
        cursors: set = set()
        for _ in range(MAX_PAGES):
            body = await self._request('GET', path, params=params or None)
            items += self._items(body, parse)
            if paging is None:
                return items
            cursor = body.get(paging.cursor_field)
            if cursor in (None, ''):
                return items
            if not isinstance(cursor, str):
                raise self._malformed(MalformedResource(f'{paging.cursor_field}: not text'))
            if cursor in cursors:
                raise self._malformed(MalformedResource(f'{paging.cursor_field} repeats'))
            cursors.add(cursor)
            params[paging.query_parameter] = cursor
        raise self._malformed(MalformedResource(f'{path} pages on past {MAX_PAGES} pages'))

    def _items(self, body: Any, parse: Callable[[Mapping[str, Any]], T]) -> List[T]:
        try:
            return [parse(item) for item in unwrap_items(body)]
        except MalformedResource as exc:
            raise self._malformed(exc) from None

    def _data(self, body: Any, parse: Callable[[Mapping[str, Any]], T]) -> T:
        try:
            return parse(unwrap_data(body))
        except MalformedResource as exc:
            raise self._malformed(exc) from None

    def _malformed(self, exc: MalformedResource) -> ApiError:
        return ApiError(INTERNAL_SERVER_ERROR, f'malformed response: {exc}', 200, self.org_id)

    async def _request(self, method: str, path: str, *, params: Optional[Dict[str, str]] = None,
                       json: Any = None, idempotency_key: Optional[str] = None,
                       deadline: Optional[float] = None) -> Any:
        """Send one logical request, retrying it when that is safe; return the parsed body."""
        deadline = deadline or time.monotonic() + self.request_timeout_s
        retry_safe = method == 'GET' or idempotency_key is not None
        headers = {IDEMPOTENCY_HEADER: idempotency_key} if idempotency_key else None
        backoff = Backoff(*self._backoff_args)
        attempt = 0
        while True:
            attempt += 1
            error = await self._attempt(method, path, params, json, headers, deadline)
            if isinstance(error, tuple):
                return error[1]
            remaining = deadline - time.monotonic()
            retryable = (error.status in RETRYABLE_STATUSES
                         or error.code in (TIMEOUT, UNAVAILABLE))
            if not (retry_safe and retryable) or attempt >= self.max_attempts:
                raise error
            delay = error.retry_after if error.retry_after is not None else backoff.next_delay()
            if delay >= remaining:
                raise error
            self.retries += 1
            _log.debug('%s %s: %s; retry %d in %.2fs', method, path, error, attempt, delay)
            await asyncio.sleep(delay)

    async def _attempt(self, method: str, path: str, params: Optional[Dict[str, str]],
                       json: Any, headers: Optional[Dict[str, str]],
                       deadline: float) -> 'ApiError | Tuple[int, Any]':
        """Return (status, body) on success, or the ApiError this attempt ended with."""
        timeout = max(0.001, min(self.request_timeout_s, deadline - time.monotonic()))
        self.requests_sent += 1
        request = self._http.build_request(method, path, params=params, json=json,
                                           headers=headers, timeout=timeout)
        try:
            response, content = await send_bounded(self._http, request)
        except httpx.TransportError as exc:  # timeouts included
            return transport_error(exc, f'{method} {self.base_url}{path}', timeout,
                                   self._token, self.org_id)
        except (ResponseTooLarge, httpx.DecodingError) as exc:
            self.responses_refused += 1
            _log.warning('%s %s: %s', method, path, exc)
            return ApiError(INTERNAL_SERVER_ERROR, f'{method} {path}: {exc}',
                            getattr(exc, 'status', 0), self.org_id)
        # A 401 means the token was not accepted: the org it names is not known to be ours.
        self.token_rejected = response.status_code == 401
        if not self.token_rejected:
            self.org_id = response.headers.get(ORG_ID_HEADER, self.org_id)
        _log.debug('%s %s -> %d (%d bytes)', method, path, response.status_code, len(content))
        body = parse_json(content)
        if response.is_success:
            if body is None:
                return ApiError(INTERNAL_SERVER_ERROR,
                                f'{method} {path}: response is not JSON',
                                response.status_code, self.org_id)
            return (response.status_code, body)
        code, message = parse_error_envelope(response.status_code, body)
        return ApiError(code, self._token.scrub(message), response.status_code, self.org_id,
                        retry_after=_retry_after(response))


def _retry_after(response: httpx.Response) -> Optional[float]:
    value = response.headers.get('Retry-After')
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # HTTP-date form: fall back on our own backoff


def _seg(value: str) -> str:
    """Quote an id as one path segment so no id can change the route."""
    return quote(value, safe='')

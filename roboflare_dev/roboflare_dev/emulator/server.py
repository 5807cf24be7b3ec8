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
The emulator's HTTP and WebSocket server (aiohttp), with fault knobs for tests.

Everything under ``/api`` and the streams follow docs/contract.md. ``/_emulator/*`` is
the emulator's own control surface (faults, live rates, injected frames, stored uploads,
outages); the real API has no such routes and the bridge never calls them.
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter, defaultdict, deque
from dataclasses import asdict, dataclass, field, fields
import logging
import secrets
import time
from typing import (
    Any, Awaitable, Callable, DefaultDict, Deque, Dict, List, Optional, Set, Tuple,
)

from aiohttp import web, WSMsgType

from . import contract
from .contract import (
    CAMERA_STREAM, CONFIG_DEPLOYMENT, DeploymentKind, ECHO_STREAM, error_code_for_status,
    IDEMPOTENCY_HEADER, LOGS_STREAM, ORG_ID_HEADER, RELEASE_DEPLOYMENT, SHELL_STREAM,
)
from .openapi import openapi_document
from .robot_shell import RobotShell
from .sim import CameraFeed, SimRobot, TOPICS, TOPICS_BY_NAME
from .world import World, WorldError

_log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Faults:
    """Fault knobs; every field can be changed at run time through POST /_emulator/faults."""

    latency_ms: float = 0.0            # added to every /api response
    error_rate: float = 0.0            # probability of a 500 on an /api request
    fail_next: int = 0                 # the next N /api requests answer fail_status
    fail_status: int = 503
    rate_limit_next: int = 0           # the next N /api requests answer 429
    retry_after_s: float = 1.0         # Retry-After of those 429s
    close_after_frames: int = 0        # each stream connection closes after N frames sent
    refuse_handshakes: int = 0         # refuse stream handshakes with this status (0 = off)
    ack_delay_ms: float = 0.0          # delay before acknowledging an upstream log batch
    ack_mode: str = 'ack'              # 'ack'; 'lose': store, never acknowledge; 'discard':
    #                                    neither store nor answer (a store failing silently)
    fail_batches_next: int = 0         # the next N batches get an error reply and are not stored
    stall_streams: bool = False        # streams go silent and stop answering pings


@dataclass
class EmulatorConfig:
    host: str = '127.0.0.1'
    port: int = 0
    tokens: List[str] = field(default_factory=list)
    robots: int = 2
    seed: int = 0
    camera_fps: float = 10.0
    camera_size: Tuple[int, int] = (320, 240)
    rate_scale: float = 1.0            # multiplies every simulated topic rate
    log_rate_hz: float = 2.0           # remote log records per second and robot
    map_cells: int = 0                 # side of each robot's latched map; 0 = 5 cm cells
    org_id: str = 'org_emulated'


@dataclass(eq=False)  # identity semantics: connections live in a set
class _Connection:
    robot_id: str
    stream: str
    ws: web.WebSocketResponse
    request: web.Request
    subscriptions: Dict[str, asyncio.Task] = field(default_factory=dict)


def generate_token() -> str:
    return f'rf_org_{secrets.token_hex(16)}'


def _envelope_error(status: int, code: str, message: str,
                    headers: Optional[Dict[str, str]] = None) -> web.Response:
    return web.json_response({'error': {'code': code, 'message': message}}, status=status,
                             headers=headers, dumps=contract.dumps)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=contract.dumps)


class Emulator:
    """The emulated Roboflare API on one port; state survives :meth:`stop` / :meth:`start`."""

    def __init__(self, config: Optional[EmulatorConfig] = None) -> None:
        self.config = config or EmulatorConfig()
        if not self.config.tokens:
            self.config.tokens = [generate_token()]
        self.tokens: Set[str] = set(self.config.tokens)
        self.world = World(self.config.robots, self.config.seed, self.config.org_id,
                           self.config.map_cells)
        # Latched topics' frames, built once (a map can be megabytes): sent on each subscribe.
        self._latched_frames: Dict[Tuple[str, str], str] = {}
        self.faults = Faults()
        self.page_size = 0  # list routes page when > 0 (and /openapi.json says so)
        self.served_spec: Optional[Dict[str, Any]] = None  # replaces /openapi.json when set
        self._fault_names = {f.name for f in fields(Faults)}
        self.port = self.config.port
        self.connections: Set[_Connection] = set()
        self.handshakes = 0
        self.shell_sessions: Deque[RobotShell] = deque(maxlen=64)  # the last shells, for tests
        # robot -> stream -> bytes sent: what each robot's uplink would carry
        self.sent_bytes: DefaultDict[str, Counter] = defaultdict(Counter)
        self.echo_ops: DefaultDict[str, Counter] = defaultdict(Counter)  # per robot, per op
        self.camera = CameraFeed(*self.config.camera_size)
        self._runner: Optional[web.AppRunner] = None
        self._ticker: Optional[asyncio.Task] = None
        self._outage_task: Optional[asyncio.Task] = None
        self._resume = asyncio.Event()
        self._resume.set()

    @property
    def url(self) -> str:
        return f'http://{self.config.host}:{self.port}'

    @property
    def token(self) -> str:
        return self.config.tokens[0]

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=1 << 20)
        self._add_routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._ticker = asyncio.ensure_future(self._tick_deployments())

    async def stop(self, abort: bool = False) -> None:
        """Stop serving; ``abort`` drops stream connections without a close frame."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        await self.drop_streams(abort=abort)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def outage(self, seconds: float) -> None:
        """Disappear for ``seconds`` (connections dropped, port closed), then come back."""
        await self.stop(abort=True)
        await asyncio.sleep(seconds)
        await self.start()

    def apply_faults(self, changes: Dict[str, Any]) -> Faults:
        """Change fault knobs by name; raise WorldError for an unknown knob."""
        for name, value in changes.items():
            if name not in self._fault_names:
                raise WorldError(400, 'bad_request', f'unknown fault {name!r}')
            setattr(self.faults, name, type(getattr(self.faults, name))(value))
        if self.faults.ack_mode not in ('ack', 'lose', 'discard'):
            bad, self.faults.ack_mode = self.faults.ack_mode, 'ack'
            raise WorldError(400, 'bad_request', f'ack_mode {bad!r} is not ack, lose or discard')
        if 'stall_streams' in changes:
            for conn in self.connections:
                self._apply_stall(conn)
        return self.faults

    def _apply_stall(self, conn: _Connection) -> None:
        # Not reading the socket means not answering pings: a half-open link to the client.
        transport = conn.request.transport
        if transport is None or transport.is_closing():
            return
        if self.faults.stall_streams:
            transport.pause_reading()
        else:
            transport.resume_reading()

    async def drop_streams(self, abort: bool = True, robot_id: str = '') -> int:
        connections = [conn for conn in self.connections
                       if not robot_id or conn.robot_id == robot_id]
        for conn in connections:
            if abort and conn.request.transport is not None:
                conn.request.transport.abort()
            else:
                await conn.ws.close(code=1001, message=b'server going away')
        return len(connections)

    async def _tick_deployments(self, period: float = 0.05) -> None:
        last = time.time()
        while True:
            await asyncio.sleep(period)
            now = time.time()
            self.world.advance(now, now - last)
            last = now

    # -- HTTP plumbing --------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await self._dispatch(request, handler)
        response.headers[ORG_ID_HEADER] = self.world.org_id
        return response

    async def _dispatch(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        is_stream = request.headers.get('Upgrade', '').lower() == 'websocket'
        if path.startswith('/api/') and not is_stream:
            injected = await self._api_faults()
            if injected is not None:
                return injected
            if not self._authorized_header(request):
                return _envelope_error(401, 'unauthorized', 'missing or invalid bearer token')
        elif path.startswith('/_emulator/') and not self._authorized_header(request):
            return _envelope_error(401, 'unauthorized', 'missing or invalid bearer token')
        try:
            return await handler(request)
        except WorldError as exc:
            return _envelope_error(exc.status, exc.code, exc.message)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            message = {404: 'route not found', 405: 'method not allowed',
                       413: 'request body too large'}.get(exc.status, exc.reason)
            return _envelope_error(exc.status, error_code_for_status(exc.status), message)
        except Exception:  # noqa: BLE001 - the envelope, not a stack trace, reaches clients
            _log.exception('emulator handler failed')
            return _envelope_error(500, 'internal_server_error', 'internal error')

    async def _api_faults(self) -> Optional[web.Response]:
        faults = self.faults
        if faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.rate_limit_next > 0:
            faults.rate_limit_next -= 1
            return _envelope_error(429, 'http_error', 'rate limited',
                                   {'Retry-After': f'{faults.retry_after_s:g}'})
        if faults.fail_next > 0:
            faults.fail_next -= 1
            return _envelope_error(faults.fail_status, error_code_for_status(faults.fail_status),
                                   'injected failure')
        if faults.error_rate > 0 and self.world.rng.random() < faults.error_rate:
            return _envelope_error(500, 'internal_server_error', 'injected failure')
        return None

    def _authorized_header(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get('Authorization', '').partition(' ')
        return scheme == 'Bearer' and token in self.tokens

    async def _json_body(self, request: web.Request) -> Any:
        raw = await request.read()
        try:
            return contract.loads(raw) if raw else None
        except ValueError:
            raise WorldError(400, 'bad_request', 'body is not valid JSON') from None

    def _add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get('/openapi.json', self._openapi)
        r.add_get('/docs', self._docs)
        r.add_get('/api/robots', self._list_robots)
        r.add_get('/api/robots/{id}', self._get_robot)
        r.add_get('/api/releases', self._list_releases)
        r.add_get('/api/releases/{id}', self._get_release)
        r.add_get('/api/configs', self._list_configs)
        # Literal routes before /api/configs/{id}, so "deployments" is not taken for an id.
        for kind in (RELEASE_DEPLOYMENT, CONFIG_DEPLOYMENT):
            r.add_get(kind.path, self._deployment_route(kind, self._list_deployments))
            r.add_post(kind.path, self._deployment_route(kind, self._create_deployment))
            r.add_get(kind.path + '/{id}', self._deployment_route(kind, self._get_deployment))
            r.add_post(kind.path + '/{id}/cancel',
                       self._deployment_route(kind, self._cancel_deployment))
        r.add_get('/api/configs/{id}', self._get_config)
        r.add_route('*', '/api/admin/{tail:.*}', self._admin)
        for stream, handler in ((LOGS_STREAM, self._logs_stream),
                                (CAMERA_STREAM, self._camera_stream),
                                (ECHO_STREAM, self._echo_stream),
                                (SHELL_STREAM, self._shell_stream)):
            r.add_get('/api/robots/{id}/' + stream, self._stream_route(stream, handler))
        r.add_get('/_emulator/faults', self._get_faults)
        r.add_post('/_emulator/faults', self._set_faults)
        r.add_post('/_emulator/deployment-timing', self._set_timing)
        r.add_post('/_emulator/pagination', self._set_pagination)
        r.add_post('/_emulator/openapi', self._set_openapi)
        r.add_get('/_emulator/rates', self._get_rates)
        r.add_post('/_emulator/rates', self._set_rates)
        r.add_get('/_emulator/robots/{id}/uploaded-logs', self._uploaded_logs)
        r.add_post('/_emulator/robots/{id}/{stream:.*}/inject', self._inject)
        r.add_post('/_emulator/drop-streams', self._drop_streams)
        r.add_post('/_emulator/robots', self._add_robot)
        r.add_post('/_emulator/robots/{id}', self._update_robot)
        r.add_delete('/_emulator/robots/{id}', self._remove_robot)
        r.add_post('/_emulator/outage', self._outage)
        r.add_get('/_emulator/stats', self._stats)

    # -- control-plane routes -------------------------------------------------------------

    async def _openapi(self, request: web.Request) -> web.Response:
        if self.served_spec is not None:
            return _json(self.served_spec)
        return _json(openapi_document(self.url, self.page_size))

    async def _docs(self, request: web.Request) -> web.Response:
        paths = openapi_document(self.url, self.page_size)['paths']
        rows = ''.join(f'<li><code>{m.upper()} {p}</code> {op["summary"]}</li>'
                       for p, ops in paths.items() for m, op in ops.items())
        return web.Response(text=f'<html><body><h1>Roboflare API (emulated)</h1><ul>{rows}'
                                 '</ul></body></html>', content_type='text/html')

    def _page(self, request: web.Request, items: List[Any]) -> web.Response:
        """Answer a list: all of it, or with pagination on one page and the next cursor."""
        if not self.page_size:
            return _json({'items': items})
        cursor = request.query.get('cursor', '')
        try:
            start = int(cursor[1:]) if cursor else 0
            if cursor and (not cursor.startswith('p') or not 0 <= start <= len(items)):
                raise ValueError
        except ValueError:
            raise WorldError(400, 'bad_request', f'invalid cursor {cursor[:20]!r}') from None
        end = start + self.page_size
        return _json({'items': items[start:end],
                      'next_cursor': f'p{end}' if end < len(items) else None})

    async def _list_robots(self, request: web.Request) -> web.Response:
        return self._page(request, [self.world.robot_json(r) for r in self.world.robots])

    async def _get_robot(self, request: web.Request) -> web.Response:
        return _json({'data': self.world.robot_json(self.world.robot(request.match_info['id']))})

    async def _list_releases(self, request: web.Request) -> web.Response:
        return self._page(request, self.world.releases)

    async def _get_release(self, request: web.Request) -> web.Response:
        return _json({'data': self.world.find(self.world.releases, request.match_info['id'],
                                              'release')})

    async def _list_configs(self, request: web.Request) -> web.Response:
        return self._page(request, self.world.configs)

    async def _get_config(self, request: web.Request) -> web.Response:
        return _json({'data': self.world.find(self.world.configs, request.match_info['id'],
                                              'config')})

    def _deployment_route(self, kind: DeploymentKind,
                          handler: Callable[[web.Request, DeploymentKind], Awaitable[Any]]
                          ) -> Handler:
        async def route(request: web.Request) -> web.StreamResponse:
            return await handler(request, kind)
        return route

    async def _list_deployments(self, request: web.Request, kind: DeploymentKind) -> web.Response:
        q = request.query
        return self._page(request, self.world.list_deployments(kind, q.get('robot_id', ''),
                                                               q.get('status', '')))

    async def _get_deployment(self, request: web.Request, kind: DeploymentKind) -> web.Response:
        return _json({'data': self.world.deployment(kind, request.match_info['id']).to_json()})

    async def _create_deployment(self, request: web.Request,
                                 kind: DeploymentKind) -> web.Response:
        key = request.headers.get(IDEMPOTENCY_HEADER, '')
        if not key:
            raise WorldError(400, 'bad_request', f'{IDEMPOTENCY_HEADER} header is required')
        replay = self.world.idempotent_responses.get((kind.path, key))
        if replay is not None:
            return _json(replay[1], replay[0])
        try:
            body = await self._json_body(request)
            status, payload = 201, {'data': self.world.create_deployment(kind, body).to_json()}
        except WorldError as exc:
            status, payload = exc.status, {'error': {'code': exc.code, 'message': exc.message}}
        self.world.idempotent_responses[(kind.path, key)] = (status, payload)
        return _json(payload, status)

    async def _cancel_deployment(self, request: web.Request,
                                 kind: DeploymentKind) -> web.Response:
        record = self.world.cancel_deployment(kind, request.match_info['id'])
        return _json({'data': record.to_json()})

    async def _admin(self, request: web.Request) -> web.Response:
        raise WorldError(403, 'forbidden', 'admin token required')

    # -- streams --------------------------------------------------------------------------

    def _stream_route(self, stream: str,
                      handler: Callable[[_Connection, SimRobot], Awaitable[None]]) -> Handler:
        async def route(request: web.Request) -> web.StreamResponse:
            self.handshakes += 1
            if request.query.get('token', '') not in self.tokens:
                return _envelope_error(401, 'unauthorized', 'missing or invalid token')
            if self.faults.refuse_handshakes:
                status = self.faults.refuse_handshakes
                return _envelope_error(status, error_code_for_status(status), 'injected refusal')
            robot = self.world.robot(request.match_info['id'])
            if robot.id in self.world.offline_since:
                return _envelope_error(503, 'http_error', 'robot is offline')
            ws = web.WebSocketResponse(max_msg_size=4 << 20, autoping=True, heartbeat=None)
            await ws.prepare(request)
            conn = _Connection(robot.id, stream, ws, request)
            self.connections.add(conn)
            self._apply_stall(conn)
            try:
                await handler(conn, robot)
            except (ConnectionError, asyncio.CancelledError, RuntimeError):
                pass  # client went away, or we dropped it
            finally:
                self.connections.discard(conn)
                for task in conn.subscriptions.values():
                    task.cancel()
                if not ws.closed:
                    await ws.close()
            return ws
        return route

    async def _send(self, conn: _Connection, frame: Any, sent: List[int]) -> None:
        """Send one frame, honouring the stall and close-after-N faults."""
        await self._resume.wait()
        if self.faults.stall_streams:
            await self._stalled()
        if isinstance(frame, bytes):
            await conn.ws.send_bytes(frame)
        else:
            await conn.ws.send_str(frame)
        sent[0] += 1
        self.sent_bytes[conn.robot_id][conn.stream] += len(frame)
        limit = self.faults.close_after_frames
        if limit and sent[0] >= limit:
            await conn.ws.close(code=1011, message=b'injected close')
            raise ConnectionError('closed after N frames (fault)')

    async def _stalled(self) -> None:
        while self.faults.stall_streams:
            await asyncio.sleep(0.05)

    async def _read_loop(self, conn: _Connection,
                         on_text: Callable[[str], Awaitable[None]]) -> None:
        while True:
            msg = await conn.ws.receive()
            if msg.type == WSMsgType.TEXT:
                await on_text(msg.data)
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING,
                              WSMsgType.ERROR):
                return

    async def _logs_stream(self, conn: _Connection, robot: SimRobot) -> None:
        sent = [0]

        async def reply(frame: Dict[str, Any], delay: float) -> None:
            if delay > 0:
                await asyncio.sleep(delay)
            if not conn.ws.closed:
                await self._send(conn, contract.dumps(frame), sent)

        async def on_text(text: str) -> None:
            try:
                batch = contract.loads(text)
            except ValueError:
                batch = None
            batch_id = batch.get('id') if isinstance(batch, dict) else None
            mode = self.faults.ack_mode
            if mode == 'discard':
                return
            try:
                if self.faults.fail_batches_next > 0:
                    self.faults.fail_batches_next -= 1
                    raise WorldError(500, 'internal_server_error', 'store unavailable (fault)')
                self.world.store_batch(robot.id, batch)
                frame = {'type': 'ack', 'id': batch_id}
            except WorldError as exc:
                frame = {'type': 'error', 'id': batch_id if isinstance(batch_id, str) else '',
                         'error': {'code': exc.code, 'message': exc.message}}
            if mode == 'lose' and frame['type'] == 'ack':
                return
            task = asyncio.ensure_future(reply(frame, self.faults.ack_delay_ms / 1000))
            conn.subscriptions[f'ack-{id(task)}'] = task
            task.add_done_callback(lambda t: conn.subscriptions.pop(f'ack-{id(t)}', None))

        async def emit() -> None:
            n = 0
            while True:
                rate = self.config.log_rate_hz  # read each record: rates change live
                await asyncio.sleep(1.0 / rate if rate > 0 else 0.5)
                if rate > 0:
                    n += 1
                    await self._send(conn, contract.dumps(robot.log_record(robot.clock(), n)),
                                     sent)

        conn.subscriptions['emit'] = asyncio.ensure_future(emit())
        await self._read_loop(conn, on_text)

    async def _camera_stream(self, conn: _Connection, robot: SimRobot) -> None:
        async def emit() -> None:
            sent, n = [0], 0
            next_at = time.monotonic()
            while True:
                period = 1.0 / self.config.camera_fps  # read each frame: rates change live
                next_at = max(next_at + period, time.monotonic() - period)
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                n += 1
                await self._send(conn, self.camera.frame(n + robot.index * 7), sent)

        conn.subscriptions['emit'] = asyncio.ensure_future(emit())

        async def ignore(text: str) -> None:
            return None
        await self._read_loop(conn, ignore)

    async def _echo_stream(self, conn: _Connection, robot: SimRobot) -> None:
        sent = [0]

        async def publish(topic: str, throttle_ms: float) -> None:
            spec = TOPICS_BY_NAME[topic]
            if spec.latched:  # as a transient-local publisher: its last message, on subscribe
                await self._send(conn, await self._latched_frame(robot, topic), sent)
                return
            build = robot.builders[topic]
            next_at = time.monotonic()
            while True:
                built_at = time.monotonic()
                msg = build(robot.clock())
                await self._send(conn, contract.dumps(
                    {'op': 'message', 'topic': topic, 'type': spec.type, 'msg': msg}), sent)
                period = max(1.0 / (spec.rate_hz * self.config.rate_scale), throttle_ms / 1000)
                # A late loop catches up by at most one period (the rate holds on average),
                # but never sends a throttled topic sooner than its throttle after the last.
                next_at = max(next_at + period, time.monotonic() - period,
                              built_at + throttle_ms / 1000)
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

        async def status(message: str, topic: str = '') -> None:
            await self._send(conn, contract.dumps(
                {'op': 'status', 'level': 'error', 'msg': message, 'topic': topic}), sent)

        async def on_text(text: str) -> None:
            try:
                op = contract.loads(text)
            except ValueError:
                return await status('frame is not JSON')
            if not isinstance(op, dict):
                return await status('frame is not a JSON object')
            kind, topic = op.get('op'), op.get('topic')
            if kind in ('list_topics', 'subscribe', 'unsubscribe'):
                self.echo_ops[conn.robot_id][kind] += 1
            if kind == 'list_topics':
                await self._send(conn, contract.dumps({'op': 'topics', 'topics': [
                    {'topic': s.name, 'type': s.type} for s in TOPICS]}), sent)
            elif kind == 'subscribe':
                if topic not in TOPICS_BY_NAME:
                    return await status(f'unknown topic {str(topic)[:100]}', str(topic)[:100])
                throttle = op.get('throttle_ms', 0)
                if not isinstance(throttle, (int, float)) or throttle < 0:
                    return await status('throttle_ms must be a non-negative number', topic)
                old = conn.subscriptions.pop(topic, None)
                if old is not None:
                    old.cancel()
                conn.subscriptions[topic] = asyncio.ensure_future(publish(topic, throttle))
            elif kind == 'unsubscribe':
                task = conn.subscriptions.pop(str(topic), None)
                if task is not None:
                    task.cancel()
            else:
                await status(f'unknown op {str(kind)[:40]}')

        await self._read_loop(conn, on_text)

    async def _latched_frame(self, robot: SimRobot, topic: str) -> str:
        frame = self._latched_frames.get((robot.id, topic))
        if frame is None:
            def build() -> str:
                message = robot.builders[topic](robot.clock())
                return contract.dumps({'op': 'message', 'topic': topic,
                                       'type': TOPICS_BY_NAME[topic].type, 'msg': message})
            frame = await asyncio.get_running_loop().run_in_executor(None, build)
            self._latched_frames[(robot.id, topic)] = frame
        return frame

    async def _shell_stream(self, conn: _Connection, robot: SimRobot) -> None:
        """Serve a PTY running the emulator's confined shell (robot_shell.py), never the host's."""
        sent = [0]
        loop = asyncio.get_running_loop()
        shell = RobotShell(robot.name, loop.time())
        self.shell_sessions.append(shell)
        await self._send(conn, b"Roboflare emulator: a confined shell, not this host's; "
                               b'type help.\r\n' + shell.prompt(), sent)
        while shell.exit_status is None:
            msg = await conn.ws.receive()
            if msg.type == WSMsgType.BINARY:
                out = shell.feed(msg.data, loop.time())
                if out:
                    await self._send(conn, out, sent)
            elif msg.type == WSMsgType.TEXT:
                size = contract.parse_resize(msg.data)
                if size is not None:
                    shell.resize(*size)
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
                return
        await conn.ws.close(code=1000,
                            message=contract.shell_exit_reason(shell.exit_status).encode())

    # -- /_emulator control surface -------------------------------------------------------

    async def _get_faults(self, request: web.Request) -> web.Response:
        return _json(asdict(self.faults))

    async def _set_faults(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        if not isinstance(body, dict):
            raise WorldError(400, 'bad_request', 'body must be an object')
        return _json(asdict(self.apply_faults(body)))

    async def _set_pagination(self, request: web.Request) -> web.Response:
        body = await self._json_body(request) or {}
        self.page_size = max(0, int(body.get('page_size', 0)))
        return _json({'page_size': self.page_size})

    async def _set_openapi(self, request: web.Request) -> web.Response:
        """Serve this document at /openapi.json (null: the emulator's own again)."""
        self.served_spec = await self._json_body(request)
        return _json({'served': 'given' if self.served_spec is not None else 'own'})

    async def _set_timing(self, request: web.Request) -> web.Response:
        body = await self._json_body(request) or {}
        timing = self.world.timing
        timing.pending_s = float(body.get('pending_s', timing.pending_s))
        timing.duration_s = float(body.get('duration_s', timing.duration_s))
        timing.fail_rate = float(body.get('fail_rate', timing.fail_rate))
        timing.fail_robot_ids = set(body.get('fail_robot_ids', timing.fail_robot_ids))
        return _json({'pending_s': timing.pending_s, 'duration_s': timing.duration_s,
                      'fail_rate': timing.fail_rate,
                      'fail_robot_ids': sorted(timing.fail_robot_ids)})

    def _rates(self) -> Dict[str, float]:
        return {'rate_scale': self.config.rate_scale, 'camera_fps': self.config.camera_fps,
                'log_rate_hz': self.config.log_rate_hz}

    async def _get_rates(self, request: web.Request) -> web.Response:
        return _json(self._rates())

    async def _set_rates(self, request: web.Request) -> web.Response:
        """Change the simulated rates of open streams too, from their next message on."""
        body = await self._json_body(request)
        if not isinstance(body, dict):
            raise WorldError(400, 'bad_request', 'body must be an object')
        rates = self._rates()
        for name, value in body.items():
            if name not in rates:
                raise WorldError(400, 'bad_request', f'unknown rate {str(name)[:40]}')
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not (value > 0 or (name == 'log_rate_hz' and value == 0)):
                raise WorldError(400, 'bad_request',
                                 f'{name} must be a positive number (log_rate_hz may be 0)')
            rates[name] = float(value)
        self.config.rate_scale = rates['rate_scale']
        self.config.camera_fps = rates['camera_fps']
        self.config.log_rate_hz = rates['log_rate_hz']
        return _json(rates)

    async def _uploaded_logs(self, request: web.Request) -> web.Response:
        robot_id = request.match_info['id']
        return _json({'items': self.world.uploaded_logs.get(robot_id, []),
                      'arrivals': self.world.uploaded_arrivals.get(robot_id, []),
                      'batches': len(self.world.uploaded_batch_ids.get(robot_id, ())),
                      'duplicate_batches': self.world.duplicate_batches})

    async def _inject(self, request: web.Request) -> web.Response:
        """Send raw frames to a robot's open stream connections (bad-input tests)."""
        robot_id, stream = request.match_info['id'], request.match_info['stream']
        body = await self._json_body(request) or {}
        frames: List[Any] = list(body.get('frames', []))
        frames += [base64.b64decode(f) for f in body.get('frames_b64', [])]
        for size in body.get('jpeg_like_bytes', []):
            frames.append(b'\xff\xd8' + bytes(max(0, int(size) - 4)) + b'\xff\xd9')
        frames += ['x' * int(size) for size in body.get('text_bytes', [])]  # over any limit
        targets = [c for c in self.connections if c.robot_id == robot_id and c.stream == stream]
        closed = 0
        for conn in targets:
            try:
                for frame in frames:
                    if isinstance(frame, bytes):
                        await conn.ws.send_bytes(frame)
                    else:
                        await conn.ws.send_str(str(frame))
            except (ConnectionError, RuntimeError):
                closed += 1  # the client hung up mid-injection (e.g. on an oversized frame)
        return _json({'connections': len(targets), 'frames': len(frames),
                      'closed_by_client': closed})

    async def _add_robot(self, request: web.Request) -> web.Response:
        body = await self._json_body(request) or {}
        robot = self.world.add_robot(str(body.get('name', '')))
        return _json({'data': self.world.robot_json(robot)}, 201)

    async def _update_robot(self, request: web.Request) -> web.Response:
        body = await self._json_body(request) or {}
        robot = self.world.update_robot(request.match_info['id'], str(body.get('name', '')),
                                        str(body.get('status', '')),
                                        body.get('clock_offset_s'))
        if robot.id in self.world.offline_since:
            await self.drop_streams(robot_id=robot.id)  # an offline robot streams nothing
        return _json({'data': self.world.robot_json(robot)})

    async def _remove_robot(self, request: web.Request) -> web.Response:
        self.world.remove_robot(request.match_info['id'])
        await self.drop_streams(robot_id=request.match_info['id'])
        return _json({'removed': request.match_info['id']})

    async def _drop_streams(self, request: web.Request) -> web.Response:
        return _json({'dropped': await self.drop_streams(abort=True)})

    async def _outage(self, request: web.Request) -> web.Response:
        body = await self._json_body(request) or {}
        seconds = float(body.get('seconds', 5))
        # Answer first, then go away: the caller learns the outage started.
        self._outage_task = asyncio.get_running_loop().create_task(
            self._after(0.05, self.outage(seconds)))
        return _json({'outage_s': seconds})

    @staticmethod
    async def _after(delay: float, coroutine: Awaitable[None]) -> None:
        await asyncio.sleep(delay)
        await coroutine

    async def _stats(self, request: web.Request) -> web.Response:
        streams: Dict[str, Dict[str, Any]] = {}
        for conn in self.connections:
            entry = streams.setdefault(f'{conn.robot_id}/{conn.stream}',
                                       {'connections': 0, 'subscriptions': []})
            entry['connections'] += 1
            entry['subscriptions'] += sorted(t for t in conn.subscriptions if t.startswith('/'))
        return _json({'handshakes': self.handshakes, 'streams': streams,
                      'sent_bytes': {robot: dict(by_stream)
                                     for robot, by_stream in self.sent_bytes.items()},
                      'echo_ops': {robot: dict(ops) for robot, ops in self.echo_ops.items()},
                      'deployments': len(self.world.deployments),
                      'uploaded_records': {robot: len(records) for robot, records
                                           in self.world.uploaded_logs.items()},
                      'duplicate_batches': self.world.duplicate_batches})

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
"""The HTTP client against the emulator over real sockets: routes, errors, retries."""

import asyncio
import functools
import itertools
import logging
import socket
import time
import tracemalloc
import uuid
import zlib

import pytest
from roboflare_bridge.control.api_client import ApiClient, MAX_RESPONSE_BYTES
from roboflare_bridge.control.resources import (
    ApiError, CONFIG_DEPLOYMENT, RELEASE_DEPLOYMENT, Robot,
)
from roboflare_bridge.transport.credentials import Credentials, Token

TOKEN = 'rf_org_' + '0' * 32


def client_for(emulator, token=None, **kwargs) -> ApiClient:
    kwargs.setdefault('backoff_initial_s', 0.01)
    return ApiClient(Credentials(emulator.url, Token(token or emulator.token)), **kwargs)


def run(coro):
    return asyncio.run(coro)


async def call(emulator, method, *args, **kwargs):
    async with client_for(emulator, **kwargs.pop('client', {})) as client:
        return await getattr(client, method)(*args, **kwargs), client


def test_lists_and_gets_every_resource(emulator):
    async def scenario():
        async with client_for(emulator) as client:
            robots = await client.list_robots()
            assert [r.id for r in robots] == ['rbt_0001', 'rbt_0002']
            assert robots[0].name == 'robot-1' and robots[0].last_seen_at[0] > 1.7e9
            assert (await client.get_robot('rbt_0002')).name == 'robot-2'
            releases = await client.list_releases()
            assert (await client.get_release(releases[0].id)) == releases[0]
            configs = await client.list_configs()
            config = await client.get_config('cfg_nav2_params')
            assert 'controller_server' in config.content and config in configs
            assert client.org_id == 'org_emulated'
    run(scenario())


def test_deployment_lifecycle_and_filters(emulator):
    async def scenario():
        async with client_for(emulator) as client:
            dep = await client.create_deployment('rel_navstack_141', ['rbt_0001'])
            assert (dep.status, dep.subject_id, dep.robot_ids) == (
                'pending', 'rel_navstack_141', ('rbt_0001',))
            assert (await client.get_deployment(dep.id)).id == dep.id
            assert [d.id for d in await client.list_deployments(robot_id='rbt_0001')] == [dep.id]
            assert await client.list_deployments(robot_id='rbt_0002') == []
            assert [d.id for d in await client.list_deployments(status='pending')] == [dep.id]
            cancelled = await client.cancel_deployment(dep.id)
            assert cancelled.status == 'cancelled' and cancelled.terminal
            with pytest.raises(ApiError) as info:
                await client.cancel_deployment(dep.id)
            assert (info.value.code, info.value.status) == ('conflict', 409)

            cdep = await client.create_deployment('cfg_fleet_env', ['rbt_0002'],
                                                  kind=CONFIG_DEPLOYMENT)
            assert cdep.subject_id == 'cfg_fleet_env'
            assert [d.id for d in await client.list_config_deployments()] == [cdep.id]
            assert (await client.get_deployment(cdep.id, CONFIG_DEPLOYMENT)).id == cdep.id
            assert (await client.cancel_deployment(cdep.id, CONFIG_DEPLOYMENT)).status == \
                'cancelled'
            with pytest.raises(ApiError) as info:  # a config deployment is not a deployment
                await client.get_deployment(cdep.id, RELEASE_DEPLOYMENT)
            assert info.value.code == 'not_found'
    run(scenario())


def test_deployment_progresses_to_success_and_seeded_failure(emulator):
    emulator.world.timing.pending_s, emulator.world.timing.duration_s = 0.05, 0.3
    emulator.world.timing.fail_robot_ids = {'rbt_0002'}

    async def follow(client, dep):
        seen = [dep.status]
        deadline = time.monotonic() + 10
        while not dep.terminal and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            dep = await client.get_deployment(dep.id)
            if dep.status != seen[-1]:
                seen.append(dep.status)
        return dep, seen

    async def scenario():
        async with client_for(emulator) as client:
            ok, seen = await follow(client, await client.create_deployment(
                'rel_navstack_141', ['rbt_0001']))
            assert seen == ['pending', 'in_progress', 'succeeded'] and ok.progress == 1.0
            bad, _ = await follow(client, await client.create_deployment(
                'rel_navstack_141', ['rbt_0001', 'rbt_0002']))
            assert bad.status == 'failed' and 'failed on 1 of 2' in bad.message
            states = {r.robot_id: r.status for r in bad.robots}
            assert states == {'rbt_0001': 'succeeded', 'rbt_0002': 'failed'}
    run(scenario())


@pytest.mark.parametrize('method,args,code,status', [
    ('get_robot', ('rbt_nope',), 'not_found', 404),
    ('get_release', ('rel_nope',), 'not_found', 404),
    ('get_config', ('cfg_nope',), 'not_found', 404),
    ('get_deployment', ('dep_nope',), 'not_found', 404),
    ('create_deployment', ('rel_nope', ['rbt_0001']), 'not_found', 404),
    ('create_deployment', ('rel_navstack_141', []), 'bad_request', 400),
])
def test_api_errors_carry_code_status_and_org(emulator, method, args, code, status):
    with pytest.raises(ApiError) as info:
        run(call(emulator, method, *args))
    error = info.value
    assert (error.code, error.status, error.org_id) == (code, status, 'org_emulated')
    if method == 'create_deployment' and code == 'not_found':
        assert error.message == 'release not found'


def test_unknown_token_is_unauthorized(emulator):
    with pytest.raises(ApiError) as info:
        run(call(emulator, 'list_robots', client={'token': 'rf_user_' + '0' * 32}))
    assert (info.value.code, info.value.status) == ('unauthorized', 401)


def test_forbidden_and_http_error_codes_from_the_envelope(emulator):
    async def scenario():
        async with client_for(emulator) as client:
            with pytest.raises(ApiError) as forbidden:
                await client._request('GET', '/api/admin/orgs')
            with pytest.raises(ApiError) as not_allowed:
                await client._request('DELETE', '/api/robots')
            return forbidden.value, not_allowed.value
    forbidden, not_allowed = run(scenario())
    assert (forbidden.code, forbidden.status) == ('forbidden', 403)
    assert (not_allowed.code, not_allowed.status) == ('http_error', 405)


def test_5xx_is_retried_for_gets_until_success(emulator):
    emulator.faults.fail_next, emulator.faults.fail_status = 2, 503
    robots, client = run(call(emulator, 'list_robots'))
    assert len(robots) == 2 and client.requests_sent == 3 and client.retries == 2


def test_5xx_gives_up_after_max_attempts_with_the_api_code(emulator):
    emulator.faults.fail_next, emulator.faults.fail_status = 10, 500
    with pytest.raises(ApiError) as info:
        run(call(emulator, 'list_robots', client={'max_attempts': 3}))
    assert (info.value.code, info.value.status) == ('internal_server_error', 500)
    assert emulator.faults.fail_next == 7  # exactly three attempts reached the server


def test_429_honours_retry_after(emulator):
    emulator.faults.rate_limit_next, emulator.faults.retry_after_s = 1, 0.4
    started = time.monotonic()
    robots, client = run(call(emulator, 'list_robots'))
    assert time.monotonic() - started >= 0.4
    assert len(robots) == 2 and client.requests_sent == 2


def test_retry_after_beyond_the_deadline_fails_fast_with_429(emulator):
    emulator.faults.rate_limit_next, emulator.faults.retry_after_s = 1, 30
    started = time.monotonic()
    with pytest.raises(ApiError) as info:
        run(call(emulator, 'list_robots', client={'request_timeout_s': 2}))
    assert (info.value.code, info.value.status) == ('http_error', 429)
    assert info.value.retry_after == 30 and time.monotonic() - started < 2


def test_no_retry_on_other_4xx(emulator):
    with pytest.raises(ApiError):
        _, client = run(call(emulator, 'get_robot', 'rbt_nope'))
    emulator.faults.fail_next, emulator.faults.fail_status = 1, 409
    with pytest.raises(ApiError) as info:
        run(call(emulator, 'list_robots'))
    assert info.value.status == 409 and emulator.faults.fail_next == 0


def test_post_without_idempotency_key_is_not_retried(emulator):
    dep, _ = run(call(emulator, 'create_deployment', 'rel_navstack_141', ['rbt_0001']))
    emulator.faults.fail_next, emulator.faults.fail_status = 1, 503
    with pytest.raises(ApiError) as info:  # cancel carries no key: not safe to repeat
        run(call(emulator, 'cancel_deployment', dep.id))
    assert info.value.status == 503


def test_idempotent_post_is_retried_and_replays_the_same_deployment(emulator):
    key = str(uuid.uuid4())
    first, _ = run(call(emulator, 'create_deployment', 'rel_navstack_141', ['rbt_0001'],
                        idempotency_key=key))
    emulator.faults.fail_next, emulator.faults.fail_status = 1, 502
    replay, client = run(call(emulator, 'create_deployment', 'rel_navstack_141', ['rbt_0001'],
                              idempotency_key=key))
    assert client.retries == 1
    assert replay == first and len(emulator.world.deployments) == 1
    other, _ = run(call(emulator, 'create_deployment', 'rel_navstack_141', ['rbt_0001']))
    assert other.id != first.id and len(emulator.world.deployments) == 2


def test_missing_idempotency_key_is_bad_request(emulator):
    async def scenario():
        async with client_for(emulator) as client:
            await client._request('POST', '/api/deployments',
                                  json={'release_id': 'rel_navstack_141',
                                        'robot_ids': ['rbt_0001']})
    with pytest.raises(ApiError) as info:
        run(scenario())
    assert (info.value.code, info.value.status) == ('bad_request', 400)


def test_slow_api_times_out_with_timeout_code(emulator):
    emulator.faults.latency_ms = 2000
    started = time.monotonic()
    with pytest.raises(ApiError) as info:
        run(call(emulator, 'list_robots', client={'request_timeout_s': 0.5}))
    assert info.value.code == 'timeout' and time.monotonic() - started < 1.5


def test_unreachable_api_is_unavailable_within_the_timeout():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    client = ApiClient(Credentials(f'http://127.0.0.1:{port}', Token('rf_org_' + 'a' * 32)),
                       request_timeout_s=1.0, backoff_initial_s=0.05)
    started = time.monotonic()
    with pytest.raises(ApiError) as info:
        run(client.list_robots())
    assert info.value.code == 'unavailable' and info.value.status == 0
    assert client.requests_sent >= 2 and time.monotonic() - started < 2.5


def test_malformed_success_body_is_an_error_not_a_crash(emulator):
    async def parse():
        async with client_for(emulator) as client:
            client._items({'items': [{'id': 5}]}, Robot.from_json)
    with pytest.raises(ApiError) as info:
        run(parse())
    assert info.value.code == 'internal_server_error' and 'malformed' in info.value.message


def test_token_never_in_logs_or_errors(emulator, caplog):
    token = emulator.token
    emulator.faults.fail_next = 1
    with caplog.at_level(logging.DEBUG):
        run(call(emulator, 'list_robots'))
        for args in (('get_robot', 'x'), ('list_robots',)):
            emulator.faults.latency_ms = 0
            try:
                run(call(emulator, *args, client={'request_timeout_s': 1}))
            except ApiError as exc:
                assert token not in str(exc) and token not in repr(exc)
        client = client_for(emulator)
        assert token not in repr(client.__dict__.get('_token'))
        run(client.aclose())
    assert caplog.records and token not in caplog.text


class HostileHttp:
    """An HTTP server on port 0 answering every request with a body the test chose."""

    def __init__(self, head: bytes, body) -> None:
        self.head, self.body = head, body  # body: bytes, or an endless generator of bytes
        self.sent = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._answer, '127.0.0.1', 0)
        return f'http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}'

    async def _answer(self, reader, writer):
        try:
            await reader.readuntil(b'\r\n\r\n')
            writer.write(self.head)
            chunks = [self.body] if isinstance(self.body, bytes) else self.body
            for chunk in chunks:
                writer.write(chunk)
                self.sent += len(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client hung up: what it is meant to do
        finally:
            writer.close()


def endless(chunk: bytes):
    while True:
        yield chunk


@functools.lru_cache(maxsize=None)
def gzip_bomb(size: int) -> bytes:
    """``size`` zero bytes gzipped (about a thousandth of it)."""
    deflater, out = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS), []
    block = bytes(1 << 20)
    out += [deflater.compress(block) for _ in range(size >> 20)]
    return b''.join(out) + deflater.flush()


HEAD = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n'
HOSTILE_BODIES = {
    # a JSON list that never ends (no length, read to the close)
    'endless': (HEAD + b'\r\n', lambda: itertools.chain(
        [b'{"items": ['], endless(b'{"id": "rbt", "name": "x", "status": "online"},' * 100)),
        'over the 33554432 bytes'),
    # 1 GiB declared: refused before a byte of it is read
    'declared': (HEAD + b'Content-Length: 1073741824\r\n\r\n', lambda: endless(bytes(65536)),
                 '1073741824 bytes declared'),
    # 1 GiB of zeros gzipped to 1 MB
    'gzip bomb': (HEAD + b'Content-Encoding: gzip\r\n\r\n', lambda: gzip_bomb(1 << 30),
                  'over the 33554432 bytes'),
    'bad gzip': (HEAD + b'Content-Encoding: gzip\r\n\r\n', lambda: b'\x1f\x8b not gzip' * 10,
                 'bad gzip data'),
}


@pytest.mark.parametrize('kind', sorted(HOSTILE_BODIES))
@pytest.mark.parametrize('route', ['list_robots', 'openapi'])
def test_huge_or_undecodable_response_bodies_are_refused_without_being_held(kind, route):
    head, body, reason = HOSTILE_BODIES[kind]

    async def scenario():
        server = HostileHttp(head, body())
        url = await server.start()
        tracemalloc.start()
        try:
            async with ApiClient(Credentials(url, Token(TOKEN)), max_attempts=1) as client:
                if route == 'openapi':
                    report = await client.check_contract()
                    return report.error, client.responses_refused, server.sent, (
                        tracemalloc.get_traced_memory()[1])
                with pytest.raises(ApiError) as info:
                    await client.list_robots()
                return str(info.value), client.responses_refused, server.sent, (
                    tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
            server.server.close()
    message, refused, sent, peak = run(scenario())
    assert reason in message and (refused == 1 or route == 'openapi'), message
    assert peak < 3 * MAX_RESPONSE_BYTES  # the body so far, never the whole of it
    if kind == 'declared':
        assert sent < 8 << 20  # the client hung up at the header


def test_a_response_at_the_limit_is_read():
    items = b'{"items": []}'
    body = items[:-2] + b' ' * (MAX_RESPONSE_BYTES - len(items)) + items[-2:]

    async def scenario():
        server = HostileHttp(HEAD + b'Content-Length: %d\r\n\r\n' % len(body), body)
        url = await server.start()
        try:
            async with ApiClient(Credentials(url, Token(TOKEN)), max_attempts=1) as client:
                return await client.list_robots()
        finally:
            server.server.close()
    assert run(scenario()) == []

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
"""The emulator: its command line, its OpenAPI document, its streams and fault knobs."""

import ast
import asyncio
import json
from pathlib import Path
import re
import subprocess
import threading
import time
import uuid

import httpx
import numpy as np
import pytest
from roboflare_bridge.transport.streams import handshake_status
from roboflare_bridge.transport.websocket import websockets_connect
from roboflare_bridge.transport.wire import (
    EchoMessage, EchoStatus, EchoTopics, parse_batch_reply, parse_echo_frame, parse_log_record,
)
import roboflare_dev.emulator
from roboflare_dev.emulator.contract import (
    CAMERA_STREAM, ECHO_STREAM, LOGS_STREAM, RecordError, SHELL_STREAM, validate_log_record,
)
from roboflare_dev.testing import EmulatorThread, executable, stop_process
from websockets.exceptions import ConnectionClosed, InvalidHandshake

STREAM_PATHS = tuple(f'/{stream}' for stream in
                     (CAMERA_STREAM, ECHO_STREAM, LOGS_STREAM, SHELL_STREAM))
REQUIRED_TOPICS = {'/odom': 'nav_msgs/msg/Odometry', '/scan': 'sensor_msgs/msg/LaserScan',
                   '/imu': 'sensor_msgs/msg/Imu', '/chatter': 'std_msgs/msg/String',
                   '/tf': 'tf2_msgs/msg/TFMessage', '/tf_static': 'tf2_msgs/msg/TFMessage'}


def ws_url(emulator, stream, robot='rbt_0001', token=None):
    base = emulator.url.replace('http://', 'ws://')
    return f'{base}/api/robots/{robot}/{stream}?token={token or emulator.token}'


async def recv_json(ws, timeout=5.0):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def start_cli(*args):
    proc = subprocess.Popen([executable('emulator'), '--port', '0', *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline().strip()
    match = re.fullmatch(r'listening on (http://127\.0\.0\.1:(\d+))', first)
    assert match, f'unexpected first line {first!r}: {proc.stderr.read() if proc.poll() else ""}'
    return proc, match.group(1)


def test_cli_prints_url_then_generated_token_and_stops_on_sigint():
    proc, url = start_cli('--robots', '3', '--camera-size', '64x48')
    try:
        token = proc.stdout.readline().strip()
        assert re.fullmatch(r'rf_org_[0-9a-f]+', token)
        response = httpx.get(url + '/api/robots', headers={'Authorization': f'Bearer {token}'})
        assert response.status_code == 200 and len(response.json()['items']) == 3
        assert response.headers['X-Roboflare-Org-Id']
    finally:
        assert stop_process(proc) == 0


def test_cli_accepts_only_the_given_tokens():
    tokens = ['rf_org_' + '1' * 32, 'rf_user_' + '2' * 32]
    proc, url = start_cli('--token', tokens[0], '--token', tokens[1])
    try:
        for token in tokens:
            assert httpx.get(url + '/api/releases',
                             headers={'Authorization': f'Bearer {token}'}).status_code == 200
        wrong = httpx.get(url + '/api/releases',
                          headers={'Authorization': 'Bearer rf_org_' + '3' * 32})
        assert wrong.status_code == 401
        assert wrong.json() == {'error': {'code': 'unauthorized',
                                          'message': 'missing or invalid bearer token'}}
    finally:
        stop_process(proc)
    assert proc.stdout.read() == ''  # no token line when tokens were given


def test_cli_refuses_bad_arguments():
    result = subprocess.run([executable('emulator'), '--camera-size', 'big'],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and 'WxH' in result.stderr


def test_closing_the_in_process_emulator_ends_what_it_left_running():
    """A task still running at close is cancelled and awaited, not left to the stopped loop."""
    emulator = EmulatorThread(robots=1)
    ended = threading.Event()

    async def leave_running():
        async def linger():
            try:
                await asyncio.Event().wait()
            finally:
                ended.set()
        return asyncio.ensure_future(linger())
    task = emulator.call(leave_running)
    emulator.close()
    assert ended.is_set() and task.cancelled()


def test_openapi_describes_every_contract_route_without_auth(emulator):
    doc = httpx.get(emulator.url + '/openapi.json').json()
    routes = {(method, path) for path, ops in doc['paths'].items() for method in ops}
    for kind in ('/api/deployments', '/api/configs/deployments'):
        assert {('get', kind), ('post', kind), ('get', kind + '/{id}'),
                ('post', kind + '/{id}/cancel')} <= routes
    assert {('get', '/api/robots'), ('get', '/api/robots/{id}'), ('get', '/api/releases'),
            ('get', '/api/releases/{id}'), ('get', '/api/configs'),
            ('get', '/api/configs/{id}')} <= routes
    post = doc['paths']['/api/deployments']['post']
    assert any(p['name'] == 'Idempotency-Key' and p['required'] for p in post['parameters'])
    assert httpx.get(emulator.url + '/docs').status_code == 200


def test_openapi_lists_every_api_route_the_emulator_serves(emulator):
    doc = httpx.get(emulator.url + '/openapi.json').json()

    def shape(path):
        return re.sub(r'\{[^}]*\}', '{}', path)
    documented = {(method.upper(), shape(path)) for path, ops in doc['paths'].items()
                  for method in ops}
    served = set()
    for route in emulator.emulator._runner.app.router.routes():
        info = route.resource.get_info()
        path = info.get('path') or info.get('formatter', '')
        if not path.startswith('/api/') or path.endswith(STREAM_PATHS) or route.method == 'HEAD':
            continue  # the reference: streams are not in the OpenAPI document
        methods = ('GET', 'POST', 'PUT', 'PATCH', 'DELETE') if route.method == '*' else (
            route.method,)
        served |= {(method, shape(path)) for method in methods}
    assert len(served) >= 19 and served <= documented, served - documented


def test_lists_page_when_pagination_is_on_and_the_spec_says_so(emulator):
    headers = {'Authorization': f'Bearer {emulator.token}'}
    emulator.control('POST', '/_emulator/robots', {})
    emulator.control('POST', '/_emulator/pagination', {'page_size': 2})
    pages, cursor = [], None
    while True:
        body = httpx.get(emulator.url + '/api/robots', headers=headers,
                         params={'cursor': cursor} if cursor else None).json()
        pages.append([robot['id'] for robot in body['items']])
        cursor = body['next_cursor']
        if cursor is None:
            break
    assert pages == [['rbt_0001', 'rbt_0002'], ['rbt_0003']]
    spec = httpx.get(emulator.url + '/openapi.json').json()
    envelope = spec['paths']['/api/robots']['get']['responses']['200']['content'][
        'application/json']['schema']
    assert 'next_cursor' in envelope['properties']
    bad = httpx.get(emulator.url + '/api/robots', headers=headers, params={'cursor': 'zz'})
    assert bad.status_code == 400 and bad.json()['error']['code'] == 'bad_request'


def test_idempotent_replay_returns_original_status_and_body_even_for_errors(emulator):
    headers = {'Authorization': f'Bearer {emulator.token}', 'Idempotency-Key': 'k-404'}
    body = {'release_id': 'rel_missing', 'robot_ids': ['rbt_0001']}
    first = httpx.post(emulator.url + '/api/deployments', json=body, headers=headers)
    emulator.world.releases.append({'id': 'rel_missing', 'name': 'n', 'version': '1'})
    replay = httpx.post(emulator.url + '/api/deployments', json=body, headers=headers)
    assert first.status_code == replay.status_code == 404
    assert first.json() == replay.json() and not emulator.world.deployments


def test_rejects_bodies_and_unknown_routes_with_envelopes(emulator):
    headers = {'Authorization': f'Bearer {emulator.token}', 'Idempotency-Key': 'k'}
    bad_json = httpx.post(emulator.url + '/api/deployments', content=b'{nope', headers=headers)
    assert (bad_json.status_code, bad_json.json()['error']['code']) == (400, 'bad_request')
    too_big = httpx.post(emulator.url + '/api/configs/deployments', content=b'x' * (2 << 20),
                         headers={**headers, 'Idempotency-Key': 'k2'})
    assert (too_big.status_code, too_big.json()['error']['code']) == (413, 'http_error')
    missing = httpx.get(emulator.url + '/api/nothing', headers=headers)
    assert (missing.status_code, missing.json()['error']['code']) == (404, 'not_found')


def test_echo_lists_subscribes_throttles_and_unsubscribes(emulator):
    async def scenario():
        async with websockets_connect(ws_url(emulator, 'ros/topics/echo')) as ws:
            await ws.send('{"op": "list_topics"}')
            topics = parse_echo_frame(await ws.recv())
            assert isinstance(topics, EchoTopics)
            listed = {t['topic']: t['type'] for t in topics.topics}
            assert REQUIRED_TOPICS.items() <= listed.items()

            await ws.send('{"op": "subscribe", "topic": "/imu", "throttle_ms": 300}')
            stamps = []
            while len(stamps) < 3:
                frame = parse_echo_frame(await ws.recv())
                assert isinstance(frame, EchoMessage) and frame.type == 'sensor_msgs/msg/Imu'
                stamp = frame.msg['header']['stamp']
                stamps.append(stamp['sec'] + stamp['nanosec'] * 1e-9)
            assert min(np.diff(stamps)) >= 0.29  # /imu is 50 Hz unthrottled

            await ws.send('{"op": "unsubscribe", "topic": "/imu"}')
            await ws.send('{"op": "list_topics"}')
            while not isinstance(parse_echo_frame(await ws.recv()), EchoTopics):
                pass
            await ws.send('{"op": "subscribe", "topic": "/odom"}')
            for _ in range(5):
                frame = parse_echo_frame(await ws.recv())
                assert frame.topic == '/odom', 'an unsubscribed topic kept flowing'

            await ws.send('{"op": "subscribe", "topic": "/nope"}')
            while not isinstance(frame := parse_echo_frame(await ws.recv()), EchoStatus):
                pass
            assert frame.level == 'error' and frame.topic == '/nope'
    asyncio.run(scenario())


def test_a_robots_clock_is_offset_and_stepped_on_the_control_api(emulator):
    def control(body):
        return httpx.post(f'{emulator.url}/_emulator/robots/rbt_0002', json=body,
                          headers={'Authorization': f'Bearer {emulator.token}'})

    async def next_odometry_lag(ws):
        while True:
            frame = parse_echo_frame(await ws.recv())
            if isinstance(frame, EchoMessage):
                stamp = frame.msg['header']['stamp']
                return stamp['sec'] + stamp['nanosec'] * 1e-9 - time.time()

    async def scenario():
        async with websockets_connect(ws_url(emulator, 'ros/topics/echo', 'rbt_0002')) as ws:
            await ws.send('{"op": "subscribe", "topic": "/odom"}')
            assert abs(await next_odometry_lag(ws)) < 0.5
            assert control({'clock_offset_s': 30}).status_code == 200
            await ws.recv()  # one may have been built before the step
            assert 29.5 < await next_odometry_lag(ws) < 30.5
            assert control({'clock_offset_s': -10.5}).status_code == 200
            await ws.recv()
            assert -11 < await next_odometry_lag(ws) < -10
        ops = emulator.control('GET', '/_emulator/stats')['echo_ops']['rbt_0002']
        assert ops['subscribe'] == 1
    asyncio.run(scenario())
    for bad in ('soon', True, 1e9, -1e9, [1]):
        response = control({'clock_offset_s': bad})
        assert response.status_code == 400, bad
        assert 'clock_offset_s' in response.json()['error']['message']


def test_echo_messages_are_plausible_and_tf_static_is_sent_once(emulator):
    async def scenario():
        async with websockets_connect(ws_url(emulator, 'ros/topics/echo')) as ws:
            await ws.send('{"op": "subscribe", "topic": "/tf_static"}')
            await ws.send('{"op": "subscribe", "topic": "/scan"}')
            static, scans = [], []
            while len(scans) < 3:
                frame = parse_echo_frame(await ws.recv())
                (static if frame.topic == '/tf_static' else scans).append(frame.msg)
            assert len(static) == 1
            children = {t['child_frame_id'] for t in static[0]['transforms']}
            assert {'laser', 'camera_link', 'camera_optical_frame'} <= children
            ranges = [r for r in scans[0]['ranges'] if r is not None]
            assert len(scans[0]['ranges']) == 360 and 0 < min(ranges) and max(ranges) < 12
    asyncio.run(scenario())


def test_camera_sends_real_jpegs_of_the_configured_size():
    import simplejpeg
    from roboflare_dev.testing import EmulatorThread
    emu = EmulatorThread(robots=1, camera_size=(96, 64), camera_fps=50)

    async def scenario():
        async with websockets_connect(ws_url(emu, 'camera/ws')) as ws:
            return [await asyncio.wait_for(ws.recv(), 5) for _ in range(5)]
    try:
        frames = asyncio.run(scenario())
    finally:
        emu.close()
    assert len(set(frames)) > 1, 'the image should move'
    for frame in frames:
        assert frame[:2] == b'\xff\xd8' and frame[-2:] == b'\xff\xd9'
        assert simplejpeg.decode_jpeg(frame).shape == (64, 96, 3)


def test_logs_stream_sends_records_and_acks_batches_once(emulator):
    record = {'ts': '2026-11-29T00:00:00.000Z', 'level': 'info', 'logger': 'x', 'msg': 'hi',
              'file': 'f.py', 'function': 'g', 'line': 3}

    async def scenario():
        async with websockets_connect(ws_url(emulator, 'logs/ws')) as ws:
            batch_id = str(uuid.uuid4())
            batch = json.dumps({'type': 'batch', 'id': batch_id, 'records': [record] * 2})
            replies = []
            for frame in (batch, batch, '{"type": "batch", "id": "b", "records": [{"x": 1}]}'):
                await ws.send(frame)
                while True:
                    obj = await recv_json(ws)
                    if 'type' in obj:
                        replies.append(obj)
                        break
                    parse_log_record(obj)  # server -> client records are valid
            return batch_id, replies
    batch_id, replies = asyncio.run(scenario())
    assert [parse_batch_reply(json.dumps(r)).ok for r in replies] == [True, True, False]
    assert replies[0]['id'] == replies[1]['id'] == batch_id
    assert replies[2]['error']['code'] == 'bad_request'
    stored = emulator.control('GET', '/_emulator/robots/rbt_0001/uploaded-logs')
    assert stored['items'] == [record, record] and stored['duplicate_batches'] == 1
    [(arrived, stored_so_far)] = stored['arrivals']  # the duplicate is not a new arrival
    assert stored_so_far == 2 and abs(arrived - time.time()) < 30


def test_rates_change_open_streams_live():
    from roboflare_dev.testing import EmulatorThread
    emu = EmulatorThread(robots=1, camera_size=(32, 32), camera_fps=5)

    async def span_of(stream, count, subscribe=None):
        async with websockets_connect(ws_url(emu, stream)) as ws:
            if subscribe:
                await ws.send(subscribe)
            await asyncio.wait_for(ws.recv(), 5)
            started = time.monotonic()
            for _ in range(count):
                await asyncio.wait_for(ws.recv(), 5)
            return time.monotonic() - started
    imu = '{"op": "subscribe", "topic": "/imu"}'
    try:
        assert emu.control('GET', '/_emulator/rates')['rate_scale'] == 1.0
        assert asyncio.run(span_of('ros/topics/echo', 10, imu)) > 0.15  # 50 Hz
        assert asyncio.run(span_of('camera/ws', 2)) > 0.3  # 5 fps
        assert emu.control('POST', '/_emulator/rates', {'rate_scale': 40, 'camera_fps': 500}) \
            == {'rate_scale': 40.0, 'camera_fps': 500.0, 'log_rate_hz': 2.0}
        assert asyncio.run(span_of('ros/topics/echo', 100, imu)) < 1.0  # 2,000 Hz
        assert asyncio.run(span_of('camera/ws', 50)) < 1.0
        for bad in ({'rate_scale': 0}, {'camera_fps': 'fast'}, {'warp': 2},
                    {'log_rate_hz': -1}, {'rate_scale': True}):
            with pytest.raises(httpx.HTTPStatusError):
                emu.control('POST', '/_emulator/rates', bad)
        assert emu.control('GET', '/_emulator/rates')['rate_scale'] == 40.0
    finally:
        emu.close()


def test_close_after_frames_and_refused_handshakes(emulator):
    emulator.control('POST', '/_emulator/faults', {'close_after_frames': 3})

    async def count_until_closed():
        received = 0
        async with websockets_connect(ws_url(emulator, 'ros/topics/echo')) as ws:
            await ws.send('{"op": "subscribe", "topic": "/imu"}')
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
                    received += 1
            except ConnectionClosed:
                return received
    assert asyncio.run(count_until_closed()) == 3

    emulator.control('POST', '/_emulator/faults',
                     {'close_after_frames': 0, 'refuse_handshakes': 503})

    async def connect(token=None):
        async with websockets_connect(ws_url(emulator, 'logs/ws', token=token)):
            pass
    for token, status in ((None, 503), ('rf_org_' + '9' * 32, 401)):
        with pytest.raises(InvalidHandshake) as info:
            asyncio.run(connect(token))
        assert handshake_status(info.value) == status


def test_unknown_fault_is_refused(emulator):
    with pytest.raises(httpx.HTTPStatusError):
        emulator.control('POST', '/_emulator/faults', {'no_such_knob': 1})


def test_unknown_ack_mode_is_refused_and_the_knob_keeps_working(emulator):
    with pytest.raises(httpx.HTTPStatusError):
        emulator.control('POST', '/_emulator/faults', {'ack_mode': 'sometimes'})
    assert emulator.faults.ack_mode == 'ack'


@pytest.mark.parametrize('record,reason', [
    ({'ts': '2026-13-01T00:00:00Z', 'level': 'info', 'logger': 'x', 'msg': 'm'}, 'valid date'),
    ({'ts': '2026-11-29 00:00:00', 'level': 'info', 'logger': 'x', 'msg': 'm'}, 'RFC 3339'),
    ({'ts': '2026-11-29T00:00:00+01:00', 'level': 'info', 'logger': 'x', 'msg': 'm'},
     'RFC 3339'),
    ({'ts': '2026-11-29T00:00:00Z', 'level': 'WARNING', 'logger': 'x', 'msg': 'm'}, 'level'),
    ({'ts': '2026-11-29T00:00:00Z', 'level': 'info', 'logger': 7, 'msg': 'm'}, 'logger'),
    ({'ts': '2026-11-29T00:00:00Z', 'level': 'info', 'logger': 'x', 'msg': 'm', 'line': -1},
     'line'),
    ({'ts': '2026-11-29T00:00:00Z', 'level': 'info', 'logger': 'x', 'msg': 'm', 'line': True},
     'line'),
])
def test_uploaded_records_are_checked_strictly_by_the_contract(record, reason):
    with pytest.raises(RecordError, match=reason):
        validate_log_record(record)
    good = dict(record, ts='1969-12-31T23:00:00.000000001Z', level='fatal', logger='x',
                line=4294967295)
    assert validate_log_record(good)['ts'] == '1969-12-31T23:00:00.000000001Z'


def test_the_emulator_shares_nothing_with_the_bridge_but_the_contract():
    # An independent oracle: a bug in the bridge's parsers must not hide in the emulator.
    package = Path(roboflare_dev.emulator.__file__).parent
    for source in package.glob('*.py'):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.level <= 1, f'{source.name} imports from the bridge: {node.module}'
                assert not (node.module or '').startswith('roboflare_bridge'), source.name
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith('roboflare_bridge') for a in node.names)

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
"""The reconnecting stream client against the emulator over real sockets."""

import asyncio
import gc
import json
import logging

import pytest
from roboflare_bridge.mirror.remote_logs import LogMirror
from roboflare_bridge.transport.backoff import Backoff
from roboflare_bridge.transport.credentials import Token
from roboflare_bridge.transport.streams import Gate, StreamClient, websocket_url
from roboflare_bridge.transport.wire import (
    ECHO_STREAM, EchoTopics, LIST_TOPICS_OP, LOGS_STREAM, MAX_LOG_FRAME_BYTES,
    parse_echo_frame, subscribe_op,
)
from roboflare_bridge.upstream.forwarder import LogForwarder
from roboflare_bridge.upstream.spool import Spool
from roboflare_dev.testing import fake_publishers, wait_until


def make_client(emulator, stream=ECHO_STREAM, token=None, **kwargs):
    frames: asyncio.Queue = asyncio.Queue()
    kwargs.setdefault('backoff', Backoff(initial=0.05, cap=0.2))
    client = StreamClient(emulator.url, 'rbt_0001', stream, Token(token or emulator.token),
                          on_frame=frames.put_nowait, **kwargs)
    return client, frames


async def next_topics(frames, timeout=5.0):
    while True:
        frame = parse_echo_frame(await asyncio.wait_for(frames.get(), timeout))
        if isinstance(frame, EchoTopics):
            return frame


def test_url_has_no_token_and_maps_schemes():
    assert websocket_url('https://api.roboflare.com', 'r 1', ECHO_STREAM) == \
        'wss://api.roboflare.com/api/robots/r%201/ros/topics/echo'
    assert websocket_url('http://127.0.0.1:9/base/', 'r', LOGS_STREAM) == \
        'ws://127.0.0.1:9/base/api/robots/r/logs/ws'


def test_receives_frames_and_counts_them(emulator):
    async def scenario():
        async def on_connect(client):
            await client.send(LIST_TOPICS_OP)
        client, frames = make_client(emulator, on_connect=on_connect)
        task = asyncio.ensure_future(client.run())
        topics = await next_topics(frames)
        assert {'topic': '/odom', 'type': 'nav_msgs/msg/Odometry'} in topics.topics
        assert client.stats.connected and client.stats.connects == 1
        assert client.stats.frames_out == 1 and client.stats.frames_in >= 1
        assert client.stats.bytes_in > 0
        await client.stop()
        await asyncio.wait_for(task, 5)
        assert not client.stats.connected
    asyncio.run(scenario())


def test_a_gated_stream_is_connected_only_while_its_gate_is_open(emulator):
    async def scenario():
        connections = asyncio.Queue()

        async def on_connect(client):
            await connections.put(client.stats.connects)
            await client.send(LIST_TOPICS_OP)
        gate = Gate()
        client, frames = make_client(emulator, on_connect=on_connect, gate=gate)
        task = asyncio.ensure_future(client.run())
        await wait_until(lambda: client.stats.idle, 5)
        assert connections.empty() and not client.stats.connected
        gate.open_if(True)
        assert await asyncio.wait_for(connections.get(), 5) == 1
        await next_topics(frames)
        gate.open_if(False)  # nothing wants it any more: a clean close, then waiting
        await wait_until(lambda: client.stats.idle and not client.stats.connected, 5)
        await wait_until(lambda: 'rbt_0001/ros/topics/echo' not in streams(), 5,
                         'the server saw the close')
        assert client.stats.reconnects == 0 and client.stats.errors == 0
        gate.open_if(True)
        assert await asyncio.wait_for(connections.get(), 5) == 2
        await client.stop()
        await asyncio.wait_for(task, 5)

    def streams():
        return emulator.control('GET', '/_emulator/stats')['streams']
    asyncio.run(scenario())


def test_reconnects_and_resubscribes_after_a_dropped_stream_and_a_restart(emulator):
    async def scenario():
        async def on_connect(client):
            await client.send(subscribe_op('/chatter'))
            await client.send(LIST_TOPICS_OP)
        client, frames = make_client(emulator, on_connect=on_connect)
        task = asyncio.ensure_future(client.run())
        await next_topics(frames)
        assert emulator.control('POST', '/_emulator/drop-streams')['dropped'] == 1
        await next_topics(frames)  # on_connect ran again on the new connection
        assert client.stats.connects == 2 and client.stats.reconnects == 1
        await wait_until(lambda: '/chatter' in str(emulator.control('GET', '/_emulator/stats')),
                         5, 'resubscription')

        emulator.call(emulator.emulator.stop)
        await wait_until(lambda: not client.stats.connected, 5, 'disconnect')
        emulator.call(emulator.emulator.start)
        await next_topics(frames, timeout=10)
        assert client.stats.connects == 3 and client.stats.errors >= 2
        await client.stop()
        await asyncio.wait_for(task, 5)
    asyncio.run(scenario())


def test_401_handshake_stops_retrying_and_is_reported(emulator):
    async def scenario():
        client, _ = make_client(emulator, token='rf_org_' + 'f' * 32)
        await asyncio.wait_for(client.run(), 5)  # returns: no retry loop
        return client
    client = asyncio.run(scenario())
    assert client.stats.unauthorized and client.stats.connects == 0
    assert 'HTTP 401' in client.stats.last_error
    assert emulator.emulator.handshakes == 1


def test_other_refusals_are_retried(emulator):
    emulator.faults.refuse_handshakes = 503

    async def scenario():
        client, frames = make_client(emulator)
        task = asyncio.ensure_future(client.run())
        await wait_until(lambda: emulator.emulator.handshakes >= 3, 5, 'retries')
        emulator.faults.refuse_handshakes = 0
        await asyncio.wait_for(client.connected.wait(), 5)
        await client.stop()
        await asyncio.wait_for(task, 5)
        return client
    client = asyncio.run(scenario())
    assert client.stats.connects == 1 and not client.stats.unauthorized


def test_half_open_connection_detected_by_ping_timeout(emulator):
    async def scenario():
        # A dead link is declared after ping interval + ping timeout, then the close
        # handshake waits up to close_timeout twice (websockets 10.4) before giving up.
        client, frames = make_client(emulator, ping_interval_s=0.2, ping_timeout_s=0.3,
                                     close_timeout_s=0.3)
        task = asyncio.ensure_future(client.run())
        await asyncio.wait_for(client.connected.wait(), 5)
        # Silent, no close frame, pings unanswered: a half-open link.
        emulator.control('POST', '/_emulator/faults', {'stall_streams': True})
        await wait_until(lambda: not client.stats.connected, 10, 'ping timeout')
        emulator.control('POST', '/_emulator/faults', {'stall_streams': False})
        await wait_until(lambda: client.stats.connects >= 2, 10, 'reconnect')
        await client.stop()
        await asyncio.wait_for(task, 5)
    asyncio.run(scenario())


def test_backoff_grows_then_resets_after_a_healthy_period():
    backoff = Backoff(initial=1, cap=8)
    bounds = []
    for _ in range(6):
        bounds.append(backoff.bound())
        delay = backoff.next_delay()
        assert bounds[-1] / 10 <= delay <= bounds[-1]
    assert bounds == [1, 2, 4, 8, 8, 8]
    backoff.reset()
    assert backoff.bound() == 1


def test_token_is_not_in_logs_even_at_debug(emulator, caplog):
    async def scenario():
        client, frames = make_client(emulator, stream=LOGS_STREAM)
        task = asyncio.ensure_future(client.run())
        await asyncio.wait_for(frames.get(), 5)
        emulator.control('POST', '/_emulator/drop-streams')
        await wait_until(lambda: client.stats.connects >= 2, 5, 'reconnect')
        await client.stop()
        await asyncio.wait_for(task, 5)
        return client
    with caplog.at_level(logging.DEBUG):
        client = asyncio.run(scenario())
    assert 'connected' in caplog.text  # the logs were captured
    assert emulator.token not in caplog.text
    assert emulator.token not in str(client.stats.as_dict())


def test_stream_compression_is_negotiated_only_where_asked(emulator):
    from roboflare_bridge.transport.streams import open_stream
    from roboflare_bridge.mirror.camera import CameraMirror
    from roboflare_bridge.mirror.topics import TopicMirror
    from roboflare_dev.testing import fake_publishers
    factory, _ = fake_publishers()
    token = Token(emulator.token)

    async def negotiated(spec, compression):
        stream = open_stream(spec, emulator.url, 'rbt_0001', token, 10.0, 10.0, compression)
        task = asyncio.ensure_future(stream.run())
        await asyncio.wait_for(stream.connected.wait(), 10)
        extensions = [type(e).__name__ for e in stream._connection.protocol.extensions]
        await stream.stop()
        await asyncio.wait_for(task, 10)
        return extensions
    echo = TopicMirror('robot_1', '/r1', 'robot_1/', factory).stream_spec()
    camera = CameraMirror('robot_1', '/r1', 'robot_1/camera', factory, lambda: (0, 0),
                          None, 1 << 20).stream_spec()
    assert asyncio.run(negotiated(echo, True)) == ['PerMessageDeflate']
    assert asyncio.run(negotiated(echo, False)) == []
    assert asyncio.run(negotiated(camera, True)) == []  # JPEGs do not compress: never


def log_record(msg: str) -> str:
    return json.dumps({'ts': '2026-12-01T00:00:00Z', 'level': 'info', 'logger': 'big',
                       'msg': msg})


@pytest.mark.parametrize('capability', ['remote logs', 'upstream logs'])
def test_log_streams_refuse_a_frame_over_their_limit_then_reconnect(emulator, tmp_path,
                                                                    capability):
    factory, _ = fake_publishers()
    if capability == 'remote logs':
        spec = LogMirror('robot_1', '/roboflare/robot_1', factory).stream_spec()
    else:
        loop = asyncio.new_event_loop()
        spec = LogForwarder(loop, Spool(tmp_path, 1 << 20), 'info', []).stream_spec()
        loop.close()
    assert spec.options['max_frame_bytes'] == MAX_LOG_FRAME_BYTES

    async def scenario():
        client, frames = make_client(emulator, stream=spec.stream, **spec.options)
        task = asyncio.ensure_future(client.run())
        await wait_until(lambda: client.stats.connected, 5, 'connected')
        inject = f'/_emulator/robots/rbt_0001/{LOGS_STREAM}/inject'
        await asyncio.to_thread(emulator.control, 'POST', inject,
                                {'text_bytes': [MAX_LOG_FRAME_BYTES + 1]})
        await wait_until(lambda: client.stats.refused and client.stats.connects >= 2, 10,
                         'a refusal and a reconnection')
        while not frames.empty():
            frames.get_nowait()
        await asyncio.to_thread(emulator.control, 'POST', inject,
                                {'frames': [log_record('small again')]})
        while json.loads(await asyncio.wait_for(frames.get(), 5)).get('msg') != 'small again':
            pass
        await client.stop()
        await asyncio.wait_for(task, 5)
        return client.stats
    stats = asyncio.run(scenario())
    assert stats.refused == {'message size': 1} and stats.drops == 1
    assert 'a frame exceeded the log frame limit' in stats.last_error


def test_one_filter_keeps_every_live_token_out_of_the_stream_logs_however_many_come_and_go():
    logger = logging.getLogger('roboflare_bridge.transport.streams.ws')
    filters_before = len(logger.filters)

    async def scenario():
        return [StreamClient('http://127.0.0.1:9', f'rbt_{index}', LOGS_STREAM,
                             Token('rf_user_%032x' % index), on_frame=print)
                for index in range(300)]
    clients = asyncio.run(scenario())
    assert len(logger.filters) == filters_before == 1  # robots joining add no filter
    record = logging.LogRecord(logger.name, logging.DEBUG, __file__, 1, 'GET %s?token=%s',
                               ('/api/robots/rbt_7/logs/ws', 'rf_user_%032x' % 7), None)
    assert logger.filters[0].filter(record) and 'rf_user_' not in record.getMessage()
    del clients
    gc.collect()  # robots that left: their tokens are no longer held
    assert not list(logger.filters[0]._tokens)

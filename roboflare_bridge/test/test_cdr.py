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
"""JSON -> CDR against rclpy's own serialisation, for every installed type, and bad input."""

import json

from hypothesis import given, HealthCheck, settings, strategies as st
import numpy
import orjson
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from roboflare_bridge.codec.cdr_writer import (
    CdrEncoder, CompressedImageWriter, may_hold_booleans, NotEncodable,
)
from roboflare_bridge.codec.json_codec import Codec
from roboflare_bridge.codec.message_types import CodecError, message_class
from rosidl_parser import definition as idl
from test_codec import BAD, canonical, message_strategy, MESSAGE_TYPES

ENCODER, CODEC = CdrEncoder('robot_1/'), Codec('robot_1/')
SUPPORTED = [name for name in MESSAGE_TYPES if ENCODER.supports(name)]
# Values that break a leaf's type or range; booleans are the frame check's business.
WRONG = ['x', 1.5, -1, 300, 2 ** 31, 2 ** 70, 1e39, None, [], {}, [1.0], {'a': 1}]


def same_as_rclpy(data: bytes, expected) -> None:
    """
    Assert CDR bytes are what rclpy would send for ``expected``, padding aside.

    rclpy's padding bytes are not zeroed (ours are), and its length is the size the rmw
    computed, which counts an 8-byte alignment after an empty sequence of doubles that it
    does not write: its tail beyond our message is padding too.
    """
    theirs = bytes(serialize_message(expected))
    assert len(data) <= len(theirs)
    assert all(ours == reference or ours == 0 for ours, reference in zip(data, theirs))
    back = deserialize_message(data, type(expected))
    # As JSON: NaN (null) equals NaN, and bytes and array.array compare as base64 or lists.
    assert Codec().encode(back) == Codec().encode(canonical(expected))


def test_nearly_every_installed_type_has_an_encoder():
    unsupported = sorted(set(MESSAGE_TYPES) - set(SUPPORTED))
    # Only types with fields the encoder leaves to the codec: char, wchar, wstring, ...
    assert len(SUPPORTED) >= 0.9 * len(MESSAGE_TYPES), unsupported
    for name in ('nav_msgs/msg/Odometry', 'sensor_msgs/msg/LaserScan', 'sensor_msgs/msg/Imu',
                 'tf2_msgs/msg/TFMessage', 'nav_msgs/msg/OccupancyGrid',
                 'sensor_msgs/msg/PointCloud2', 'std_msgs/msg/String'):
        assert name in SUPPORTED


@pytest.mark.parametrize('type_name', SUPPORTED)
def test_encodes_as_rclpy_serialises(type_name):
    cls = message_class(type_name)
    same_as_rclpy(ENCODER.encode(type_name, {}), cls())  # every default

    @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
    @given(message_strategy(cls))
    def encoded(message):
        wire = orjson.loads(orjson.dumps(Codec().encode(message)))
        try:
            data = ENCODER.encode(type_name, wire)
        except NotEncodable:
            assert may_hold_booleans(orjson.dumps(wire).decode())  # bools: the codec's
            return
        same_as_rclpy(data, CODEC.decode(type_name, wire))  # frame ids prefixed alike
    encoded()


def leaves(value, path=()):
    """Yield the path of every leaf (and of every container) of a JSON value."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, path + (index,))


def replaced(value, path, new):
    if not path:
        return new
    copy = list(value) if isinstance(value, list) else dict(value)
    copy[path[0]] = replaced(value[path[0]], path[1:], new)
    return copy


@pytest.mark.parametrize('type_name', [
    'nav_msgs/msg/Odometry', 'sensor_msgs/msg/LaserScan', 'tf2_msgs/msg/TFMessage',
    'sensor_msgs/msg/Imu', 'sensor_msgs/msg/NavSatFix', 'sensor_msgs/msg/JointState',
    'nav_msgs/msg/OccupancyGrid', 'std_msgs/msg/Int8MultiArray', 'std_msgs/msg/UInt64',
    'sensor_msgs/msg/PointCloud2', 'sensor_msgs/msg/CompressedImage'])
def test_never_accepts_what_the_codec_rejects(type_name):
    cls = message_class(type_name)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(message_strategy(cls), st.data())
    def mutated(message, data):
        wire = orjson.loads(orjson.dumps(Codec().encode(message)))
        path = data.draw(st.sampled_from(list(leaves(wire))))
        bad = replaced(wire, path, data.draw(st.sampled_from(WRONG)))
        try:
            expected = CODEC.decode(type_name, bad)
        except CodecError:
            expected = None
        try:
            encoded = ENCODER.encode(type_name, bad)
        except NotEncodable:
            return  # the mirror takes the codec's path: its verdict, its reason
        assert expected is not None, f'accepted {bad!r}'
        same_as_rclpy(encoded, expected)
    mutated()


@pytest.mark.parametrize('type_name,obj,reason', BAD)
def test_the_codecs_bad_input_is_not_encodable(type_name, obj, reason):
    if may_hold_booleans(json.dumps(obj)):
        return  # {"data": true} for an integer: the frame check sends it to the codec
    with pytest.raises((NotEncodable, CodecError)):
        ENCODER.encode(type_name, obj)


def test_null_is_nan_in_number_sequences_and_the_rest_goes_to_the_codec():
    scan = {'ranges': [1.0, None, 2], 'intensities': [None]}
    same_as_rclpy(ENCODER.encode('sensor_msgs/msg/LaserScan', scan),
                  CODEC.decode('sensor_msgs/msg/LaserScan', scan))
    for obj in ({'header': {'frame_id': 'a\x00b'}}, {'angle_min': None},
                {'ranges': [1.0, None, 'x']}):
        with pytest.raises(NotEncodable):
            ENCODER.encode('sensor_msgs/msg/LaserScan', obj)
    CODEC.decode('sensor_msgs/msg/LaserScan', {'angle_min': None})  # NaN, the codec's way


@pytest.mark.parametrize('big', [1e39, -1e39, 3.5e38, -3.41e38])
def test_a_float32_overflow_in_a_sequence_is_refused_wherever_it_stands(big):
    # Sequences are packed in the host's order, where a float32 overflow packs as infinity
    # instead of raising: the encoder must still refuse it, as the codec does.
    for ranges in ([big], [1.0] * 719 + [big], [big] + [2.0] * 359, [None, big, 1.0]):
        with pytest.raises(NotEncodable):
            ENCODER.encode('sensor_msgs/msg/LaserScan', {'ranges': ranges})
        with pytest.raises(CodecError):
            CODEC.decode('sensor_msgs/msg/LaserScan', {'ranges': ranges})


def test_float32_extremes_that_fit_are_encoded_as_rclpy_would():
    # 2 ** 127 and above share their top byte with infinity and NaN: checked, then kept.
    limit = float(numpy.finfo(numpy.float32).max)
    for ranges in ([limit, -limit, 2.0 ** 127, -(2.0 ** 127), 1e-45, -0.0, 1.0],
                   [limit] * 720, [None, limit, 1.5]):
        scan = {'ranges': ranges, 'intensities': list(reversed(ranges))}
        same_as_rclpy(ENCODER.encode('sensor_msgs/msg/LaserScan', scan),
                      CODEC.decode('sensor_msgs/msg/LaserScan', scan))
    poses = {'poses': [{'position': {'x': 1e300}}], 'header': {}}  # doubles never overflow
    same_as_rclpy(ENCODER.encode('geometry_msgs/msg/PoseArray', poses),
                  CODEC.decode('geometry_msgs/msg/PoseArray', poses))
    wide = {'data': [1e300, -1e300, 5e-324]}
    same_as_rclpy(ENCODER.encode('std_msgs/msg/Float64MultiArray', wide),
                  CODEC.decode('std_msgs/msg/Float64MultiArray', wide))


def test_booleans_are_spotted_in_the_frame_text():
    assert may_hold_booleans('{"msg": {"data": true}}')
    assert may_hold_booleans('{"msg": {"ranges": [false]}}')
    assert not may_hold_booleans('{"msg": {"ranges": [1.0, 1, null], "name": "TRUE"}}')


def test_frame_ids_are_prefixed_like_the_codec_and_empty_ones_stay_empty():
    obj = {'transforms': [{'header': {'frame_id': '/odom'}, 'child_frame_id': 'base_link'},
                          {'header': {'frame_id': ''}}]}
    message = deserialize_message(ENCODER.encode('tf2_msgs/msg/TFMessage', obj),
                                  message_class('tf2_msgs/msg/TFMessage'))
    assert [(t.header.frame_id, t.child_frame_id) for t in message.transforms] == [
        ('robot_1/odom', 'robot_1/base_link'), ('', '')]
    # Frame ids are encoded once and then reused: the reuse, past the cache's bound too.
    for frame_id in ['/odom'] + [f'frame_{i}' for i in range(600)] + ['/odom']:
        obj = {'header': {'frame_id': frame_id}, 'child_frame_id': frame_id}
        same_as_rclpy(ENCODER.encode('nav_msgs/msg/Odometry', obj),
                      CODEC.decode('nav_msgs/msg/Odometry', obj))
    for frame_id in (['odom'], {'a': 1}, 5, None, 'a\x00b'):
        with pytest.raises(NotEncodable):
            ENCODER.encode('nav_msgs/msg/Odometry', {'header': {'frame_id': frame_id}})


def test_unknown_types_are_not_supported():
    assert not ENCODER.supports('exotic_msgs/msg/Thing')
    with pytest.raises(NotEncodable):
        ENCODER.encode('exotic_msgs/msg/Thing', {})


@pytest.mark.parametrize('frame_id', ['', 'robot_1/camera_optical_frame', 'abc'])
@pytest.mark.parametrize('size', [0, 1, 2, 3, 4, 42_000])
def test_a_camera_frame_is_serialised_as_rclpy_would(frame_id, size):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    expected = message_class('sensor_msgs/msg/CompressedImage')(format='jpeg', data=data)
    expected.header.frame_id = frame_id
    expected.header.stamp.sec, expected.header.stamp.nanosec = 1_700_000_000, 999_999_999
    same_as_rclpy(CompressedImageWriter(frame_id, 'jpeg').serialise(
        1_700_000_000, 999_999_999, data), expected)


def has_header(cls, seen=()):
    """Return whether a std_msgs/Header is in the type, at any depth."""
    for kind in cls.SLOT_TYPES:
        kind = getattr(kind, 'value_type', kind)
        if isinstance(kind, idl.NamespacedType):
            name = '/'.join(kind.namespaces + [kind.name])
            if name == 'std_msgs/msg/Header':
                return True
            if name not in seen and has_header(message_class(name), seen + (name,)):
                return True
    return False


def shifted(sec, nanosec):
    """Restamp 1.5 s later (the range check is RobotClock's, tested beside it)."""
    total = sec * 10 ** 9 + nanosec + 1_500_000_000
    return total // 10 ** 9, total % 10 ** 9


RESTAMPING_ENCODER = CdrEncoder('robot_1/', restamp=shifted)
RESTAMPING_CODEC = Codec('robot_1/', restamp=shifted)
STAMPED = [name for name in SUPPORTED if has_header(message_class(name))]


def test_some_types_carry_headers_nested_in_arrays():
    for name in ('nav_msgs/msg/Odometry', 'tf2_msgs/msg/TFMessage', 'nav_msgs/msg/Path'):
        assert name in STAMPED


@pytest.mark.parametrize('type_name', STAMPED)
def test_restamped_alike_by_the_encoder_and_the_codec(type_name):
    cls = message_class(type_name)

    @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
    @given(message_strategy(cls))
    def encoded(message):
        wire = orjson.loads(orjson.dumps(Codec().encode(message)))
        try:
            data = RESTAMPING_ENCODER.encode(type_name, wire)
        except NotEncodable:
            return  # booleans, or a stamp shifted past int32: the codec's path judges
        same_as_rclpy(data, RESTAMPING_CODEC.decode(type_name, wire))
    encoded()


def test_every_header_stamp_is_restamped_however_deep():
    path = {'header': {'stamp': {'sec': 10, 'nanosec': 0}},
            'poses': [{'header': {'stamp': {'sec': 20, 'nanosec': 600_000_000}}},
                      {'header': {'stamp': {'sec': 30, 'nanosec': 0}}}]}
    for message in (deserialize_message(RESTAMPING_ENCODER.encode('nav_msgs/msg/Path', path),
                                        message_class('nav_msgs/msg/Path')),
                    RESTAMPING_CODEC.decode('nav_msgs/msg/Path', path)):
        assert (message.header.stamp.sec, message.header.stamp.nanosec) == (11, 500_000_000)
        assert [(p.header.stamp.sec, p.header.stamp.nanosec) for p in message.poses] == [
            (22, 100_000_000), (31, 500_000_000)]
    # Only header stamps: a map's load time is not the time of a header.
    grid = {'header': {'stamp': {'sec': 10}}, 'info': {'map_load_time': {'sec': 10}}}
    message = RESTAMPING_CODEC.decode('nav_msgs/msg/OccupancyGrid', grid)
    assert (message.header.stamp.sec, message.info.map_load_time.sec) == (11, 10)

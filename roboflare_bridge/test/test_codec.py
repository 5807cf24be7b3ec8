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
"""The JSON <-> message codec: round trips over every installed type, and bad input."""

import base64
import math
import sys

from ament_index_python import get_resource, get_resources
from hypothesis import given, HealthCheck, settings, strategies as st
import numpy as np
import orjson
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from roboflare_bridge.codec.json_codec import Codec
from roboflare_bridge.codec.message_types import CodecError, message_class, UnknownType
from roboflare_bridge.codec.rclpy_fast_paths import fast_paths
from rosidl_parser import definition as idl

INT_RANGES = {'int8': 7, 'int16': 15, 'int32': 31, 'int64': 63}
UINT_BITS = {'uint8': 8, 'uint16': 16, 'uint32': 32, 'uint64': 64}


def installed_message_types():
    names = []
    for package in sorted(get_resources('rosidl_interfaces')):
        content, _ = get_resource('rosidl_interfaces', package)
        for line in content.splitlines():
            if line.startswith('msg/') and line.endswith('.msg'):
                names.append(f'{package}/msg/{line[4:-4]}')
    return names


MESSAGE_TYPES = installed_message_types()
# C strings: no NUL; wstrings are UTF-16: no surrogates, BMP only.
TEXT = st.text(st.characters(blacklist_categories=('Cs',), blacklist_characters='\x00',
                             max_codepoint=0xFFFF), max_size=12)
PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


def value_strategy(kind, depth):
    if isinstance(kind, idl.NamespacedType):
        return message_strategy(message_class(f'{kind.namespaces[0]}/{kind.name}'), depth + 1)
    if isinstance(kind, (idl.AbstractString, idl.AbstractWString)):
        bound = getattr(kind, 'maximum_size', None)
        return TEXT if bound is None else st.text(PRINTABLE, max_size=bound)
    if isinstance(kind, idl.AbstractNestedType):
        element = value_strategy(kind.value_type, depth)
        if isinstance(kind, idl.Array):
            return st.lists(element, min_size=kind.size, max_size=kind.size)
        bound = getattr(kind, 'maximum_size', None)
        return st.lists(element, max_size=min(bound or 4, 4))
    name = kind.typename
    if name in INT_RANGES:
        bits = INT_RANGES[name]
        return st.integers(-2 ** bits, 2 ** bits - 1)
    if name in UINT_BITS:
        return st.integers(0, 2 ** UINT_BITS[name] - 1)
    if name == 'float':
        return st.floats(width=32, allow_nan=False, allow_infinity=False)
    if name in ('double', 'long double'):
        return st.floats(allow_nan=False, allow_infinity=False)
    if name == 'boolean':
        return st.booleans()
    if name == 'octet':
        return st.binary(min_size=1, max_size=1)
    if name in ('char', 'wchar'):
        return st.characters(min_codepoint=0x20, max_codepoint=0x7E)
    raise AssertionError(f'no strategy for {name}')


def message_strategy(cls, depth=0):
    if depth > 4:
        return st.just(cls())
    fields = {name: value_strategy(kind, depth)
              for name, kind in zip(cls.get_fields_and_field_types(), cls.SLOT_TYPES)}
    # Built with the generated constructor: rclpy's own representation of each field.
    return st.fixed_dictionaries(fields).map(lambda values: cls(**values))


def canonical(message):
    """
    Return the message as rclpy deserialises it (bytes vs array.array and the like).

    Serialised bytes themselves cannot be compared: CDR padding is not always zeroed.
    """
    return deserialize_message(serialize_message(message), type(message))


def test_every_interface_package_is_found():
    assert {'nav_msgs/msg/Odometry', 'sensor_msgs/msg/LaserScan', 'tf2_msgs/msg/TFMessage',
            'roboflare_interfaces/msg/Deployment'} <= set(MESSAGE_TYPES)
    assert len(MESSAGE_TYPES) > 100


@pytest.mark.parametrize('type_name', MESSAGE_TYPES)
def test_round_trip_message_json_message(type_name):
    cls = message_class(type_name)
    codec = Codec()

    @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
    @given(message_strategy(cls))
    def round_trip(message):
        wire = orjson.loads(orjson.dumps(codec.encode(message)))
        decoded = codec.decode(type_name, wire)
        assert type(decoded) is cls
        assert canonical(decoded) == canonical(message)
    round_trip()


def odometry_json():
    return {'header': {'stamp': {'sec': 5, 'nanosec': 6}, 'frame_id': 'odom'},
            'child_frame_id': 'base_link',
            'pose': {'pose': {'position': {'x': 1.0, 'y': 2, 'z': 0.0},
                              'orientation': {'x': 0.0, 'y': 0.0, 'z': 0.0, 'w': 1.0}},
                     'covariance': [0.5] * 36}}


def test_decodes_with_defaults_for_missing_fields_and_prefixes_frames():
    message = Codec('robot_1/').decode('nav_msgs/msg/Odometry', odometry_json())
    assert (message.header.frame_id, message.child_frame_id) == ('robot_1/odom',
                                                                 'robot_1/base_link')
    assert message.pose.pose.position.y == 2.0 and message.twist.twist.linear.x == 0.0
    assert message.pose.covariance.dtype == np.float64 and message.pose.covariance[35] == 0.5
    assert message.header.stamp.nanosec == 6
    serialize_message(message)


def test_tf_frames_are_prefixed_once_and_empty_frames_stay_empty():
    tf = {'transforms': [{'header': {'frame_id': '/odom'}, 'child_frame_id': 'base_link'},
                         {'header': {'frame_id': ''}, 'child_frame_id': 'laser'}]}
    message = Codec('r_7up/').decode('tf2_msgs/msg/TFMessage', tf)
    assert [(t.header.frame_id, t.child_frame_id) for t in message.transforms] == [
        ('r_7up/odom', 'r_7up/base_link'), ('', 'r_7up/laser')]


def test_null_is_nan_and_nan_encodes_as_null():
    scan = Codec().decode('sensor_msgs/msg/LaserScan',
                          {'ranges': [1.0, None, 2.5], 'range_max': None})
    assert math.isnan(scan.ranges[1]) and math.isnan(scan.range_max)
    scan.ranges[2] = float('inf')
    assert Codec().encode(scan)['ranges'] == [1.0, None, None]


def test_64_bit_integers_are_exact():
    big = 2 ** 63 - 1
    wire = orjson.loads(orjson.dumps({'data': big}))
    assert Codec().decode('std_msgs/msg/Int64', wire).data == big
    assert Codec().decode('std_msgs/msg/UInt64', {'data': 2 ** 64 - 1}).data == 2 ** 64 - 1


def test_byte_arrays_travel_as_base64_straight_into_bytes():
    payload = bytes(range(256)) * 4
    image = Codec().decode('sensor_msgs/msg/CompressedImage',
                           {'format': 'jpeg', 'data': base64.b64encode(payload).decode()})
    assert bytes(image.data) == payload
    if fast_paths().slot_construction:
        assert type(image.data) is bytes  # straight from base64, no per-byte conversion
    assert Codec().encode(image)['data'] == base64.b64encode(payload).decode()
    octets = Codec().decode('std_msgs/msg/ByteMultiArray',
                            {'data': base64.b64encode(b'\x00\x01').decode()})
    assert bytes(serialize_message(octets))[-2:] == b'\x00\x01'


BAD = [
    ('std_msgs/msg/String', {'data': 5}, 'data: expected a string, got int'),
    ('std_msgs/msg/Int8', {'data': 128}, 'data: 128 is out of range for int8'),
    ('std_msgs/msg/UInt32', {'data': -1}, 'data: -1 is out of range for uint32'),
    ('std_msgs/msg/UInt64', {'data': 2 ** 64}, 'out of range for uint64'),
    ('std_msgs/msg/Int32', {'data': 1.5}, 'data: expected an integer, got float'),
    ('std_msgs/msg/Int32', {'data': True}, 'data: expected an integer, got bool'),
    ('std_msgs/msg/Bool', {'data': 1}, 'data: expected true or false, got int'),
    ('std_msgs/msg/Float32', {'data': 1e39}, 'out of range for float32'),
    ('std_msgs/msg/Float64', {'data': '1.0'}, 'data: expected a number, got str'),
    ('std_msgs/msg/Float64', {'data': 10 ** 400}, 'out of range for double'),
    ('std_msgs/msg/String', {'data': 'x', 'extra': 1}, 'unknown field(s) extra'),
    ('std_msgs/msg/Header', {'stamp': []}, 'stamp: expected a builtin_interfaces/msg/Time'),
    ('nav_msgs/msg/Odometry', {'pose': {'covariance': [0.0] * 37}},
     'pose.covariance: expected exactly 36 elements, got 37'),
    ('nav_msgs/msg/Odometry', {'pose': {'covariance': [0.0] * 35 + ['x']}},
     'pose.covariance: expected double elements, element 35 is str'),
    ('sensor_msgs/msg/LaserScan', {'ranges': 'abc'}, 'ranges: expected an array, got str'),
    ('sensor_msgs/msg/LaserScan', {'ranges': [[1.0]]}, 'element 0 is list'),
    ('sensor_msgs/msg/CompressedImage', {'data': 'not base64!'}, 'data: invalid base64'),
    ('sensor_msgs/msg/CompressedImage', {'data': [255, 216]}, 'expected a base64 string'),
    ('tf2_msgs/msg/TFMessage', {'transforms': [{'header': {'frame_id': 7}}]},
     'transforms[0].header.frame_id: expected a string, got int'),
    ('tf2_msgs/msg/TFMessage', {'transforms': [{}, {'child_frame_id': None}]},
     'transforms[1].child_frame_id: expected a string, got null'),
    ('std_msgs/msg/String', {'data': {'data': {'data': {'data': {}}}}},
     'data: expected a string, got dict'),
    ('std_msgs/msg/String', [], 'expected a std_msgs/msg/String object, got list'),
    ('sensor_msgs/msg/NavSatFix', {'position_covariance': list(range(10 ** 5))},
     'expected exactly 9 elements, got 100000'),
]


@pytest.mark.parametrize('type_name,obj,reason', BAD)
def test_bad_input_is_rejected_with_a_precise_reason(type_name, obj, reason):
    with pytest.raises(CodecError) as info:
        Codec().decode(type_name, obj)
    assert reason in str(info.value)


def test_the_same_codec_keeps_working_after_bad_input():
    codec = Codec('r/')
    for type_name, obj, _ in BAD:
        with pytest.raises(CodecError):
            codec.decode(type_name, obj)
    assert codec.decode('nav_msgs/msg/Odometry', odometry_json()).child_frame_id == \
        'r/base_link'


@pytest.mark.parametrize('name', ['not_a/msg/Type', 'os/msg/System', 'nav_msgs/msg/Nope',
                                  'nav_msgs/srv/Odometry', '../../etc', 'a' * 300,
                                  'std_msgs/msg/String/extra', 'roboflare_bridge/msg/X'])
def test_unknown_or_invalid_type_names(name):
    with pytest.raises(UnknownType):
        Codec().decode(name, {})


def test_huge_strings_are_accepted_within_frame_limits_and_bounded_ones_checked():
    text = 'x' * 1_000_000
    assert len(Codec().decode('std_msgs/msg/String', {'data': text}).data) == 1_000_000
    with pytest.raises(CodecError, match='node_name: string of 257 characters exceeds'):
        Codec().decode('rmw_dds_common/msg/NodeEntitiesInfo', {'node_name': 'n' * 257})
    with pytest.raises(CodecError, match='integer_range: 2 elements exceed the bound of 1'):
        Codec().decode('rcl_interfaces/msg/ParameterDescriptor', {'integer_range': [{}, {}]})


@pytest.mark.parametrize('name', ['antigravity/msg/Fly', 'this/msg/Zen', 'os/msg/Path',
                                  'email/msg/Message', 'nav_msgs/msg/NotAType'])
def test_a_type_name_from_the_network_never_imports_what_is_not_a_message_type(name):
    package = name.split('/')[0]
    imported = package in sys.modules
    with pytest.raises(UnknownType, match='is not installed'):
        message_class(name)
    assert (package in sys.modules) == imported  # 'this' would print the Zen of Python

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
JSON <-> ROS 2 messages, following rosbridge's conventions (docs/contract.md, echo).

Pure Python, no transport. Each message type gets a conversion plan, built once from its
``SLOT_TYPES``, that checks every JSON value (types, integer ranges, string bounds,
array lengths) and writes it straight into the message's slots: a JSON frame becomes a
message without going through the generated constructors and property setters, which check
the same things again, field by field, in Python (rclpy_fast_paths's ``slot_construction``;
where it is off, the plan uses the constructor and setters).

Conventions: nested messages are objects; arrays are lists; ``uint8[]``, ``byte[]`` and
``char[]`` (fixed, bounded or unbounded) are base64 strings; Time and Duration are
``{"sec", "nanosec"}``; NaN and infinities travel as ``null`` (decoded as NaN); 64-bit
integers are exact. Missing fields keep their defaults; unknown fields and type mismatches
reject the whole message with a :class:`CodecError` that names the field.
"""

from __future__ import annotations

import array
import base64
import binascii
import copy
import math
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
from rosidl_parser import definition as idl

from .message_types import (
    CodecError, message_class, MessageClass, nested_class, prefixed_frame, type_name_of,
)
from .rclpy_fast_paths import fast_paths

Decoder = Callable[[Any], Any]
Encoder = Callable[[Any], Any]

_NAN = float('nan')

INT_RANGES = {
    'int8': (-2 ** 7, 2 ** 7 - 1), 'uint8': (0, 2 ** 8 - 1),
    'int16': (-2 ** 15, 2 ** 15 - 1), 'uint16': (0, 2 ** 16 - 1),
    'int32': (-2 ** 31, 2 ** 31 - 1), 'uint32': (0, 2 ** 32 - 1),
    'int64': (-2 ** 63, 2 ** 63 - 1), 'uint64': (0, 2 ** 64 - 1),
}
ARRAY_TYPECODES = {'int8': 'b', 'uint8': 'B', 'int16': 'h', 'uint16': 'H', 'int32': 'i',
                   'uint32': 'I', 'int64': 'q', 'uint64': 'Q', 'float': 'f', 'double': 'd',
                   'long double': 'd'}
NUMPY_DTYPES = {'int8': np.int8, 'uint8': np.uint8, 'int16': np.int16, 'uint16': np.uint16,
                'int32': np.int32, 'uint32': np.uint32, 'int64': np.int64,
                'uint64': np.uint64, 'float': np.float32, 'double': np.float64,
                'long double': np.float64, 'boolean': np.bool_}
FLOAT32_MAX = 3.4028234663852886e38
BYTE_TYPES = ('uint8', 'octet', 'char')  # arrays of these travel as base64


class Codec:
    """
    Conversion plans per message type; one instance per robot (its frame prefix).

    ``restamp`` (sec, nanosec) -> (sec, nanosec), if given, rewrites every header's stamp
    a decoded message carries (its own and those of the messages nested in it).
    """

    def __init__(self, frame_prefix: str = '',
                 restamp: Optional[Callable[[int, int], Tuple[int, int]]] = None) -> None:
        self.frame_prefix = frame_prefix
        self.restamp = restamp
        self._plans: Dict[MessageClass, _Plan] = {}
        self._by_name: Dict[str, _Plan] = {}

    def plan_for(self, type_name: str) -> '_Plan':
        plan = self._by_name.get(type_name)
        if plan is None:
            plan = self._by_name[type_name] = self._plan(message_class(type_name))
        return plan

    def decode(self, type_name: str, obj: Any) -> Any:
        """Return a message of ``type_name`` built from a JSON object."""
        return self.plan_for(type_name).decode(obj)

    def encode(self, message: Any) -> Dict[str, Any]:
        """Return the JSON object of a message (frame ids unchanged)."""
        return self._plan(type(message)).encode(message)

    def _plan(self, cls: MessageClass) -> '_Plan':
        plan = self._plans.get(cls)
        if plan is None:
            plan = _Plan(cls)
            self._plans[cls] = plan  # before filling: recursive types terminate
            plan.fill(self)
        return plan

    # -- field converters -----------------------------------------------------------------

    def field(self, owner: MessageClass, name: str, kind: Any) -> Tuple[Decoder, Encoder]:
        """Return the decoder and encoder of one field of ``owner``."""
        frame = (self.frame_prefix and isinstance(kind, idl.AbstractString)
                 and ((name == 'frame_id' and type_name_of(owner) == 'std_msgs/msg/Header')
                      or name == 'child_frame_id'))
        if frame:
            return self._frame_id(kind), _identity
        if (self.restamp is not None and name == 'stamp'
                and type_name_of(owner) == 'std_msgs/msg/Header'):
            return self._restamped(kind)
        if isinstance(kind, idl.AbstractNestedType):
            return self._nested(kind)
        return self._scalar(kind)

    def _frame_id(self, kind: Any) -> Decoder:
        check = _string_decoder(kind)
        prefix = self.frame_prefix

        def decode(value: Any) -> str:
            return prefixed_frame(prefix, check(value))
        return decode

    def _restamped(self, kind: Any) -> Tuple[Decoder, Encoder]:
        decode_time, encode_time = self._scalar(kind)
        restamp = self.restamp
        assert restamp is not None

        def decode(value: Any) -> Any:
            stamp = decode_time(value)
            stamp.sec, stamp.nanosec = restamp(stamp.sec, stamp.nanosec)
            return stamp
        return decode, encode_time

    def _scalar(self, kind: Any) -> Tuple[Decoder, Encoder]:
        if isinstance(kind, idl.NamespacedType):
            plan = self._plan(nested_class(kind))
            return plan.decode, plan.encode
        if isinstance(kind, (idl.AbstractString, idl.AbstractWString)):
            return _string_decoder(kind), _identity
        if isinstance(kind, idl.BasicType):
            return _basic_decoder(kind.typename), _basic_encoder(kind.typename)
        raise CodecError(f'unsupported IDL type {type(kind).__name__}')

    def _nested(self, kind: Any) -> Tuple[Decoder, Encoder]:
        element = kind.value_type
        if isinstance(kind, idl.Array):
            size, bound = kind.size, kind.size
        elif isinstance(kind, idl.BoundedSequence):
            size, bound = None, kind.maximum_size
        else:
            size, bound = None, None
        typename: str = getattr(element, 'typename', '')
        if typename in BYTE_TYPES:
            return _bytes_decoder(typename, size, bound), _bytes_encoder
        if typename in ARRAY_TYPECODES or typename == 'boolean':
            return _number_array_decoder(typename, size, bound), _number_array_encoder
        decode_one, encode_one = self._scalar(element)

        def decode(value: Any) -> list:
            if type(value) is not list:
                raise CodecError(f'expected an array, got {_kind(value)}')
            _check_length(len(value), size, bound)
            try:
                return [decode_one(item) for item in value]
            except CodecError as exc:
                index = next(i for i, item in enumerate(value) if _fails(decode_one, item))
                raise exc.at(f'[{index}]') from None

        def encode(value: Any) -> list:
            return [encode_one(item) for item in value]
        return decode, encode


_MISSING = object()


class _Plan:
    """
    How to build and dump one message type.

    ``decode`` is generated once per type as straight-line Python (see :meth:`_compile`):
    one slot store per field, the common JSON type checked inline, everything else
    (defaults, conversions, errors with their path) in a per-field slow path.
    """

    def __init__(self, cls: MessageClass) -> None:
        self.cls = cls
        self.type_name = type_name_of(cls)
        self.encoders: List[Tuple[str, str, Encoder]] = []
        self.names: frozenset = frozenset()
        self.decode: Decoder = self._decode_before_fill

    def _decode_before_fill(self, obj: Any) -> Any:  # only reachable for recursive types
        return self.decode(obj)

    def fill(self, codec: Codec) -> None:
        prototype = self.cls()
        names = list(self.cls.get_fields_and_field_types())
        fields = []
        for name, kind in zip(names, self.cls.SLOT_TYPES):
            if not name.isidentifier():
                raise CodecError(f'{self.type_name}: unusable field name {name!r}')
            decode, encode = codec.field(self.cls, name, kind)
            fields.append((name, kind, decode, _default_factory(getattr(prototype, name))))
            self.encoders.append((name, '_' + name, encode))
        self.names = frozenset(names)
        # Slots that are not fields (rosidl's _check_fields): keep the constructor's choice.
        extra = [(slot, getattr(prototype, slot)) for slot in self.cls.__slots__
                 if slot[1:] not in self.names]
        self.decode = self._compile(fields, extra)

    def _compile(self, fields: list, extra: list) -> Decoder:
        # Slot stores skip the generated setters, which check again what was checked here;
        # without that fast path (rclpy_fast_paths) the constructor and setters build it.
        slots = fast_paths().slot_construction
        scope: Dict[str, Any] = {'CodecError': CodecError, 'MISSING': _MISSING,
                                 'new': self.cls.__new__, 'cls': self.cls, 'kind': _kind,
                                 'names': self.names, 'unknown': self._unknown}
        lines = ['def decode(obj):',
                 '    if type(obj) is not dict:',
                 f'        raise CodecError("expected a {self.type_name} object, got " '
                 '+ kind(obj))',
                 '    if not names.issuperset(obj):',
                 '        unknown(obj)',
                 '    m = new(cls)' if slots else '    m = cls()',
                 '    get = obj.get']
        for i, (slot, value) in enumerate(extra if slots else ()):
            scope[f'extra{i}'] = value
            lines.append(f'    m.{slot} = extra{i}')
        for i, (name, kind, decode, default) in enumerate(fields):
            scope[f'slow{i}'] = _slow_path(name, decode, default)
            scope[f'dec{i}'] = decode
            lines.append(f'    v = get({name!r}, MISSING)')
            inline = _inline_check(kind, decode)
            if inline:
                lines += [f'    if {inline}:', f'        v = slow{i}(v)']
            else:
                lines += ['    if v is MISSING:', f'        v = slow{i}(v)', '    else:',
                          '        try:', f'            v = dec{i}(v)',
                          '        except CodecError as exc:',
                          f'            raise exc.at({name!r}) from None']
            lines.append(f'    m._{name} = v' if slots else f'    m.{name} = v')
        lines.append('    return m')
        exec('\n'.join(lines), scope)  # noqa: S102 - source built from the type's own names
        return scope['decode']

    def _unknown(self, obj: Dict[str, Any]) -> None:
        unknown = sorted(str(k) for k in obj if k not in self.names)
        raise CodecError(f'unknown field(s) {", ".join(unknown)[:200]} for {self.type_name}')

    def encode(self, message: Any) -> Dict[str, Any]:
        return {name: encode(getattr(message, slot)) for name, slot, encode in self.encoders}


def _inline_check(kind: Any, decode: Decoder) -> str:
    """Return the test (true = take the slow path) of a field whose common case is inline."""
    if decode is _DECODE_DOUBLE:
        return 'type(v) is not float'
    if decode is _decode_string:
        return 'type(v) is not str'
    typename = getattr(kind, 'typename', None)
    if isinstance(kind, idl.BasicType) and typename in INT_RANGES:
        low, high = INT_RANGES[typename]
        return f'type(v) is not int or not {low} <= v <= {high}'
    if isinstance(kind, idl.BasicType) and typename == 'boolean':
        return 'type(v) is not bool'
    return ''


def _slow_path(name: str, decode: Decoder, default: Callable[[], Any]) -> Decoder:
    def slow(value: Any) -> Any:
        if value is _MISSING:
            return default()
        try:
            return decode(value)
        except CodecError as exc:
            raise exc.at(name) from None
    return slow


# -- scalars -------------------------------------------------------------------------------

def _kind(value: Any) -> str:
    return 'null' if value is None else type(value).__name__


def _identity(value: Any) -> Any:
    return value


def _fails(decode: Decoder, value: Any) -> bool:
    try:
        decode(value)
    except CodecError:
        return True
    return False


def _decode_string(value: Any) -> str:
    if type(value) is not str:
        raise CodecError(f'expected a string, got {_kind(value)}')
    return value


def _string_decoder(kind: Any) -> Decoder:
    bound = getattr(kind, 'maximum_size', None)
    if bound is None:
        return _decode_string

    def decode(value: Any) -> str:
        value = _decode_string(value)
        if len(value) > bound:
            raise CodecError(f'string of {len(value)} characters exceeds its bound of {bound}')
        return value
    return decode


def _basic_decoder(typename: str) -> Decoder:
    if typename in ('double', 'long double'):
        return _DECODE_DOUBLE
    if typename == 'float':
        return _DECODE_FLOAT32
    return _other_basic_decoder(typename)


def _float_decoder(typename: str) -> Decoder:
    single = typename == 'float'

    def decode_float(value: Any) -> float:
        kind = type(value)
        if kind is float:
            pass
        elif kind is int:
            try:
                value = float(value)
            except OverflowError:
                raise CodecError(f'{value} is out of range for {typename}') from None
        elif value is None:
            return _NAN  # NaN and infinities travel as null
        else:
            raise CodecError(f'expected a number, got {_kind(value)}')
        if single and not math.isinf(value) and abs(value) > FLOAT32_MAX:
            raise CodecError(f'{value} is out of range for float32')
        return value
    return decode_float


_DECODE_DOUBLE = _float_decoder('double')
_DECODE_FLOAT32 = _float_decoder('float')


def _other_basic_decoder(typename: str) -> Decoder:
    if typename in INT_RANGES:
        low, high = INT_RANGES[typename]

        def decode_int(value: Any) -> int:
            if type(value) is not int:
                raise CodecError(f'expected an integer, got {_kind(value)}')
            if not low <= value <= high:
                raise CodecError(f'{value} is out of range for {typename}')
            return value
        return decode_int
    if typename == 'boolean':
        def decode_bool(value: Any) -> bool:
            if type(value) is not bool:
                raise CodecError(f'expected true or false, got {_kind(value)}')
            return value
        return decode_bool
    if typename == 'octet':
        def decode_octet(value: Any) -> bytes:
            if type(value) is not int or not 0 <= value <= 255:
                raise CodecError(f'expected a byte (0..255), got {value!r:.40}')
            return bytes((value,))
        return decode_octet
    if typename in ('char', 'wchar'):
        def decode_char(value: Any) -> str:
            if type(value) is not str or len(value) != 1:
                raise CodecError('expected a one-character string')
            return value
        return decode_char
    raise CodecError(f'unsupported basic type {typename}')


def _basic_encoder(typename: str) -> Encoder:
    if typename in ('float', 'double', 'long double'):
        return _encode_float
    if typename == 'octet':
        return _encode_octet
    return _identity


def _encode_float(value: float) -> Optional[float]:
    return value if math.isfinite(value) else None


def _encode_octet(value: bytes) -> int:
    return value[0]


# -- arrays of numbers ---------------------------------------------------------------------

def _check_length(length: int, size: Optional[int], bound: Optional[int]) -> None:
    if size is not None and length != size:
        raise CodecError(f'expected exactly {size} elements, got {length}')
    if bound is not None and length > bound:
        raise CodecError(f'{length} elements exceed the bound of {bound}')


def _first_bad(values: list, allowed: tuple) -> str:
    for i, value in enumerate(values):
        if type(value) not in allowed:
            return f'element {i} is {_kind(value)}'
    return 'an element is out of range'


def _number_array_decoder(typename: str, size: Optional[int], bound: Optional[int]) -> Decoder:
    is_float = typename in ('float', 'double', 'long double')
    allowed = (float, int) if is_float else (bool,) if typename == 'boolean' else (int,)
    typecode = ARRAY_TYPECODES.get(typename, '')
    dtype = NUMPY_DTYPES[typename]

    def decode(value: Any) -> Any:
        if type(value) is not list:
            raise CodecError(f'expected an array, got {_kind(value)}')
        _check_length(len(value), size, bound)
        types = set(map(type, value))
        if is_float and type(None) in types:
            value = [_NAN if v is None else v for v in value]  # null is NaN/Inf on the wire
            types.discard(type(None))
        if not types.issubset(allowed):
            raise CodecError(f'expected {typename} elements, {_first_bad(value, allowed)}')
        try:
            if size is not None and typename in ('double', 'long double'):
                return np.array(value, dtype=np.float64)  # fixed arrays are numpy arrays
            if typename == 'boolean':
                return np.array(value, dtype=dtype) if size is not None else value
            # array.array checks integer ranges, which numpy 1.26 would wrap silently.
            converted = array.array(typecode, value)
            if typename == 'float' and np.isinf(np.frombuffer(converted, np.float32)).any():
                # array('f') turns a too-large double into inf: only a real inf may be one.
                if any(abs(v) > FLOAT32_MAX and not math.isinf(v) for v in value):
                    raise OverflowError
        except OverflowError:
            raise CodecError(f'a value is out of range for {typename}') from None
        if size is not None:
            return np.frombuffer(converted, dtype=dtype).copy()
        return converted
    return decode


def _number_array_encoder(value: Any) -> list:
    values = value if isinstance(value, list) else value.tolist()  # bool sequences are lists
    if values and type(values[0]) is float:
        return [v if math.isfinite(v) else None for v in values]
    return values


# -- byte arrays (base64) ------------------------------------------------------------------

def _bytes_decoder(typename: str, size: Optional[int], bound: Optional[int]) -> Decoder:
    def decode(value: Any) -> Any:
        if type(value) is not str:
            raise CodecError(f'expected a base64 string, got {_kind(value)}')
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise CodecError('invalid base64') from None
        _check_length(len(data), size, bound)
        if size is not None:  # fixed arrays
            if typename == 'octet':
                return [data[i:i + 1] for i in range(len(data))]
            return np.frombuffer(data, dtype=np.uint8).copy()
        return data  # sequences: rclpy serialises bytes directly (no per-byte work)
    return decode


def _bytes_encoder(value: Any) -> str:
    if isinstance(value, list):  # octet sequences default to a list of 1-byte bytes
        value = b''.join(value)
    return base64.b64encode(bytes(value)).decode('ascii')


# -- defaults ------------------------------------------------------------------------------

def _default_factory(value: Any) -> Callable[[], Any]:
    if isinstance(value, (int, float, str, bool, bytes)):
        return lambda: value
    if isinstance(value, np.ndarray):
        return value.copy
    if isinstance(value, (array.array, list)):
        return lambda: copy.copy(value)
    return lambda: copy.deepcopy(value)

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
JSON -> serialised CDR, straight from an echo frame's object, for ``Publisher.publish(bytes)``.

The mirror's fast path: no message object is built and rclpy does not convert one field by
field, which costs more than building it (profile in the README). Pure Python, no
transport. Each type gets a generated encoder, built once from its ``SLOT_TYPES`` like the
codec's plans: nested messages are flattened, runs of fixed-size fields are packed by one
``struct`` call, strings and sequences are written with the alignment plain (XCDR1,
little-endian) CDR requires.

The encoder is optimistic and the codec stays the judge. It accepts a value only where the
codec accepts it and encodes it as rclpy would (a test compares it byte for byte with
``serialize_message`` for every installed message type); anything else (a wrong type, a
value out of range, a ``null`` for NaN outside a sequence, a field it does not handle) raises
:class:`NotEncodable` and the caller takes the codec's path, which gives the precise error
or the message. ``struct`` checks numbers in bulk and in C, but it takes JSON ``true`` and
``false`` for 1 and 0: objects that may hold booleans (:func:`may_hold_booleans` on the
frame) must go to the codec. Frame ids get the robot's prefix as in the codec, and every
``std_msgs/Header`` stamp goes through the encoder's ``restamp`` hook when it has one, as
in the codec.
"""

from __future__ import annotations

import base64
import struct
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

from rosidl_parser import definition as idl

from .message_types import (
    CodecError, message_class, MessageClass, nested_class, prefixed_frame, type_name_of,
)

# XCDR1, little-endian, no options: what rmw_fastrtps and rmw_cyclonedds write.
ENCAPSULATION = b'\x00\x01\x00\x00'
STRUCT_CODES = {'int8': 'b', 'uint8': 'B', 'int16': 'h', 'uint16': 'H', 'int32': 'i',
                'uint32': 'I', 'int64': 'q', 'uint64': 'Q', 'float': 'f', 'double': 'd',
                'boolean': '?', 'octet': 'B'}
BYTE_ELEMENTS = ('uint8', 'octet', 'char')  # arrays of these travel as base64 (codec)
_EMPTY: Dict[str, Any] = {}
_MISSING = object()
_NAN = float('nan')
_ZEROS = tuple(bytes(n) for n in range(8))
FRAME_IDS_KEPT = 256  # encoded frame ids per field: a robot has a handful of frames

Put = Callable[[Any, List[bytes], int], int]


class NotEncodable(Exception):
    """This object is not for the fast path: take the codec's (it says why, or decodes it)."""


class Unsupported(NotEncodable):
    """The type has a field the encoder does not write (wstring, char, long double)."""


def may_hold_booleans(frame: str) -> bool:
    """Whether a JSON text may hold ``true`` or ``false`` (then it is not for the encoder)."""
    return 'true' in frame or 'false' in frame


class CdrEncoder:
    """
    Generated encoders per message type; one instance per robot (like the codec).

    ``restamp`` (sec, nanosec) -> (sec, nanosec), if given, rewrites every header's stamp.
    """

    def __init__(self, frame_prefix: str = '',
                 restamp: Optional[Callable[[int, int], Tuple[int, int]]] = None) -> None:
        self.frame_prefix = frame_prefix
        self.restamp = restamp
        self._puts: Dict[MessageClass, Optional[Put]] = {}
        # type name -> (its encoder or None, whether the type has a fixed size)
        self._by_name: Dict[str, Tuple[Optional[Put], bool]] = {}

    def supports(self, type_name: str) -> bool:
        """Whether ``type_name`` has an encoder (False: unsupported fields, or unknown)."""
        return self._entry(type_name)[0] is not None

    def encode(self, type_name: str, obj: Any) -> bytes:
        """Return the serialised message of ``type_name`` built from a JSON object."""
        put, fixed_size = self._by_name.get(type_name) or self._entry(type_name)
        if put is None:
            raise Unsupported(type_name)
        parts = [ENCAPSULATION]
        try:
            size = put(obj, parts, 0)
        except NotEncodable:
            raise
        except Exception as exc:  # noqa: BLE001 - struct, base64, unicode: the codec judges
            raise NotEncodable(f'{type(exc).__name__}: {exc}') from None
        if fixed_size:
            parts.append(_ZEROS[-size & 3])  # the rmw sends a fixed-size type in whole words
        return b''.join(parts)

    def _entry(self, type_name: str) -> Tuple[Optional[Put], bool]:
        entry = self._by_name.get(type_name)
        if entry is None:
            try:
                cls = message_class(type_name)
                entry = (self._put_for(cls), _fixed_size(cls))
            except (NotEncodable, CodecError):  # unsupported fields, or an unknown type
                entry = (None, False)
            self._by_name[type_name] = entry
        return entry

    def _put_for(self, cls: MessageClass) -> Put:
        if cls not in self._puts:
            self._puts[cls] = None  # recursive types are not flattened: unsupported
            self._puts[cls] = _Compiler(self).build(cls)
        put = self._puts[cls]
        if put is None:
            raise Unsupported(type_name_of(cls))
        return put


class _Segment:
    """A run of fixed-size fields packed by one struct call, whatever the offset's phase."""

    def __init__(self) -> None:
        self.codes: List[Tuple[str, int]] = []  # (struct code, count)
        self.values: List[str] = []  # Python expressions, in order

    def add(self, code: str, count: int, value: str) -> None:
        self.codes.append((code, count))
        self.values.append(value)

    def structs(self) -> Tuple[struct.Struct, ...]:
        """One Struct per offset modulo 8, with the padding that offset needs."""
        result = []
        for phase in range(8):
            layout, position = ['<'], phase
            for code, count in self.codes:
                align = 1 if code == 's' else struct.calcsize(code)
                pad = -position % align
                if pad:
                    layout.append(f'{pad}x')
                layout.append(f'{count}{code}')
                position += pad + (count if code == 's' else count * align)
            result.append(struct.Struct(''.join(layout)))
        return tuple(result)


class _Compiler:
    """Writes one type's encoder as straight-line Python (see the module's docstring)."""

    def __init__(self, encoder: CdrEncoder) -> None:
        self.encoder = encoder
        self.scope: Dict[str, Any] = {
            'NotEncodable': NotEncodable, 'EMPTY': _EMPTY, 'MISSING': _MISSING,
            'ZEROS': _ZEROS, 'b64decode': base64.b64decode,
            'string_default': _string_default, 'frame_bytes': _frame_bytes, 'NUL': b'\x00',
            'restamp': encoder.restamp}
        self.lines: List[str] = []
        self.segment = _Segment()
        self.counter = 0
        self.indent = 0  # inside a loop of the generated code

    def build(self, cls: MessageClass) -> Put:
        self.lines = ['def put(o0, parts, off):']
        self._check_object('o0', cls)
        self._message('o0', cls)
        self._flush()
        self.lines.append('    return off')
        exec('\n'.join(self.lines), self.scope)  # noqa: S102 - built from the type's names
        return self.scope['put']

    def _name(self, stem: str) -> str:
        self.counter += 1
        return f'{stem}{self.counter}'

    def _constant(self, value: Any) -> str:
        name = self._name('K')
        self.scope[name] = value
        return name

    def _emit(self, *lines: str) -> None:
        margin = '    ' * (1 + self.indent)
        self.lines.extend(margin + line for line in lines)

    def _check_object(self, var: str, cls: MessageClass) -> None:
        names = self._constant(frozenset(cls.get_fields_and_field_types()))
        self._emit(f'if type({var}) is not dict or not {names}.issuperset({var}):',
                   '    raise NotEncodable')

    def _flush(self) -> None:
        if not self.segment.codes:
            return
        structs = self._constant(self.segment.structs())
        packed = self._name('s')
        self._emit(f'{packed} = {structs}[off & 7]',
                   f'parts.append({packed}.pack({", ".join(self.segment.values)}))',
                   f'off += {packed}.size')
        self.segment = _Segment()

    def _message(self, var: str, cls: MessageClass) -> None:
        prototype = cls()
        owner = type_name_of(cls)
        if not cls.SLOT_TYPES:
            self.segment.add('B', 1, '0')  # an empty message is one byte on the wire (rosidl)
        for name, kind in zip(cls.get_fields_and_field_types(), cls.SLOT_TYPES):
            default = getattr(prototype, name)
            if isinstance(kind, idl.NamespacedType):
                nested = self._name('o')
                self._emit(f'{nested} = {var}.get({name!r}, EMPTY)')
                child = nested_class(kind)
                self._check_object(nested, child)
                if (self.encoder.restamp is not None and name == 'stamp'
                        and owner == 'std_msgs/msg/Header'):
                    self._restamped(nested)
                else:
                    self._message(nested, child)
            elif isinstance(kind, idl.BasicType):
                self._basic(var, name, kind.typename, default)
            elif isinstance(kind, idl.AbstractString):
                frame = (self.encoder.frame_prefix != ''
                         and ((name == 'frame_id' and owner == 'std_msgs/msg/Header')
                              or name == 'child_frame_id'))
                self._string(f'{var}.get({name!r}, MISSING)', default,
                             getattr(kind, 'maximum_size', None), frame)
            elif isinstance(kind, idl.Array):
                self._array(var, name, kind, default)
            elif isinstance(kind, idl.AbstractSequence):
                self._sequence(var, name, kind)
            else:
                raise Unsupported(f'{owner}.{name}')

    def _restamped(self, var: str) -> None:
        # A Time: sec (int32), nanosec (uint32); struct refuses what restamp made of bad input.
        sec, nanosec = self._name('v'), self._name('v')
        self._emit(f'{sec}, {nanosec} = restamp({var}.get("sec", 0), {var}.get("nanosec", 0))')
        self.segment.add('i', 1, sec)
        self.segment.add('I', 1, nanosec)

    def _basic(self, var: str, name: str, typename: str, default: Any) -> None:
        code = STRUCT_CODES.get(typename)
        if code is None:
            raise Unsupported(typename)
        if typename == 'octet':
            default = default[0]  # rosidl's octet is a 1-byte bytes; JSON has the integer
        value = self._name('v')
        self._emit(f'{value} = {var}.get({name!r}, {self._constant(default)})')
        if typename == 'boolean':  # struct takes anything as a bool: check it here
            self._emit(f'if type({value}) is not bool:', '    raise NotEncodable')
        self.segment.add(code, 1, value)

    def _string(self, expression: str, default: str, bound: Optional[int], frame: bool) -> None:
        # Inline: a message has several strings, and a call per string shows in the profile.
        # The length goes into the segment before it, so it costs no struct call of its own.
        value, data = self._name('t'), self._name('b')
        self._emit(f'{value} = {expression}')
        if frame:  # a few ids over and over: encoded once each
            cache = self._constant({})
            self._emit(f'{data} = {cache}.get({value})', f'if {data} is None:',
                       f'    {data} = frame_bytes({cache}, '
                       f'{self._constant(self.encoder.frame_prefix)}, {value}, '
                       f'{self._constant(default)}, {bound})')
        else:
            self._emit(f'if type({value}) is not str:',
                       f'    {value} = string_default({value}, {self._constant(default)})')
            if bound is not None:
                self._emit(f'if len({value}) > {bound}:', '    raise NotEncodable')
            self._emit(f'{data} = {value}.encode()', f'if NUL in {data}:',
                       '    raise NotEncodable  # rclpy would cut it there',
                       f'{data} += NUL')
        self.segment.add('I', 1, f'len({data})')
        self._flush()
        self._emit(f'parts.append({data})', f'off += len({data})')

    def _array(self, var: str, name: str, kind: Any, default: Any) -> None:
        element, size = kind.value_type, kind.size
        typename: str = getattr(element, 'typename', '')
        value = self._name('a')
        if typename in BYTE_ELEMENTS:
            default_text = base64.b64encode(bytes(bytearray(default))).decode('ascii')
            self._emit(f'{value} = {var}.get({name!r}, {self._constant(default_text)})',
                       f'if type({value}) is not str:', '    raise NotEncodable',
                       f'{value} = b64decode({value}, validate=True)',
                       f'if len({value}) != {size}:', '    raise NotEncodable')
            self.segment.add('s', size, value)
            return
        code = STRUCT_CODES.get(typename) if typename != 'boolean' else None
        if code is None:
            raise Unsupported(f'{name}: arrays of {typename or element}')
        listed = [x.item() if hasattr(x, 'item') else x for x in default]
        self._emit(f'{value} = {var}.get({name!r}, {self._constant(listed)})',
                   f'if type({value}) is not list or len({value}) != {size}:',
                   '    raise NotEncodable')
        self.segment.add(code, size, f'*{value}')

    def _sequence(self, var: str, name: str, kind: Any) -> None:
        element = kind.value_type
        bound = kind.maximum_size if isinstance(kind, idl.BoundedSequence) else None
        typename: str = getattr(element, 'typename', '')
        value, count = self._name('a'), self._name('n')
        self._emit(f'{value} = {var}.get({name!r}, MISSING)')
        if typename in BYTE_ELEMENTS:
            self._emit(f'if {value} is MISSING:', f'    {value} = b""',
                       f'elif type({value}) is not str:', '    raise NotEncodable',
                       'else:', f'    {value} = b64decode({value}, validate=True)')
        else:
            self._emit(f'if {value} is MISSING:', f'    {value} = []',
                       f'elif type({value}) is not list:', '    raise NotEncodable')
        self._emit(f'{count} = len({value})')
        if bound is not None:
            self._emit(f'if {count} > {bound}:', '    raise NotEncodable')
        self.segment.add('I', 1, count)  # the length, in the segment before it
        self._flush()
        if typename in BYTE_ELEMENTS:
            self._emit(f'parts.append({value})', f'off += {count}')
        elif isinstance(element, idl.BasicType):
            code = STRUCT_CODES.get(typename)
            if code is None:
                raise Unsupported(f'{name}: sequences of {typename}')
            size = struct.calcsize(code)
            self._emit(f'if {count}:')
            if size == 8:  # after the 4-byte length, smaller elements are aligned already
                self._emit('    pad = -off & 7', '    parts.append(ZEROS[pad])', '    off += pad')
            packer = self._constant(_PACKERS[code])
            self._emit(f'    parts.append({packer}({value}))',
                       f'    off += {count} * {size}')
        elif isinstance(element, idl.AbstractString):
            item = self._name('i')
            self._emit(f'for {item} in {value}:')
            self.indent += 1
            self._string(item, '', getattr(element, 'maximum_size', None), frame=False)
            self.indent -= 1
        elif isinstance(element, idl.NamespacedType):
            put = self._constant(self.encoder._put_for(
                nested_class(element)))
            item = self._name('i')
            self._emit(f'for {item} in {value}:', f'    off = {put}({item}, parts, off)')
        else:
            raise Unsupported(f'{name}: sequences of {element}')


class CompressedImageWriter:
    """
    One camera's ``sensor_msgs/CompressedImage`` serialised around a frame's bytes.

    All but the stamp and the data is the same in every message, so it is encoded once;
    each frame costs one join (the camera's fast path: no message, no base64).
    """

    _STAMP = struct.Struct('<iI')
    _LENGTH = struct.Struct('<I')

    def __init__(self, frame_id: str, image_format: str) -> None:
        empty = CdrEncoder().encode('sensor_msgs/msg/CompressedImage', {
            'header': {'frame_id': frame_id}, 'format': image_format})
        # Encapsulation and stamp (12 bytes), frame id and format, then data's length (4).
        self._between = empty[12:-4]

    def serialise(self, sec: int, nanosec: int, data: bytes) -> bytes:
        return b''.join((ENCAPSULATION, self._STAMP.pack(sec, nanosec), self._between,
                         self._LENGTH.pack(len(data)), data))


def _fixed_size(cls: MessageClass) -> bool:
    """Whether a type has neither strings nor sequences, at any depth."""
    for kind in cls.SLOT_TYPES:
        if isinstance(kind, idl.Array):
            kind = kind.value_type
        if isinstance(kind, (idl.AbstractSequence, idl.AbstractString, idl.AbstractWString)):
            return False
        if isinstance(kind, idl.NamespacedType) and not _fixed_size(
                nested_class(kind)):
            return False
    return True


def _string_default(value: Any, default: str) -> str:
    if value is _MISSING:
        return default
    raise NotEncodable


def _frame_bytes(cache: Dict[str, bytes], prefix: str, value: Any, default: str,
                 bound: Optional[int]) -> bytes:
    """Return a frame id field's bytes on the wire (NUL-terminated); remember a given id's."""
    if type(value) is not str:  # a default keeps its frame id as it is (as in the codec)
        return _string_default(value, default).encode() + b'\x00'
    text = prefixed_frame(prefix, value)
    if bound is not None and len(text) > bound:
        raise NotEncodable
    data = text.encode()
    if b'\x00' in data:
        raise NotEncodable  # rclpy would cut it there
    if len(cache) >= FRAME_IDS_KEPT:
        cache.clear()
    data = cache[value] = data + b'\x00'
    return data


_SEQUENCE_STRUCTS_KEPT = 512  # sequence lengths vary: a bounded cache of their layouts per code
# On a little-endian host, struct's native float and double packers are plain C casts, a
# third cheaper than the little-endian ones (720 floats: 5.2 vs 7.8 us); integers gain
# nothing. The native float32 cast turns an overflow into infinity instead of raising.
_NATIVE_CODES = 'fd' if sys.byteorder == 'little' else ''


def _number_packer(code: str) -> Callable[[list], bytes]:
    """
    Return a packer of a list of Python numbers as a sequence of ``code``'s elements.

    struct checks every element's type and range in C, and is faster than array.array or
    numpy for a list of Python numbers; Structs kept per length save parsing formats.
    """
    layouts: Dict[int, Tuple[struct.Struct, struct.Struct]] = {}

    def layouts_for(count: int) -> Tuple[struct.Struct, struct.Struct]:
        if len(layouts) >= _SEQUENCE_STRUCTS_KEPT:
            layouts.clear()
        checked = struct.Struct(f'<{count}{code}')
        native = struct.Struct(f'@{count}{code}') if code in _NATIVE_CODES else checked
        layouts[count] = (native, checked)
        return native, checked

    def pack(values: list) -> bytes:
        native, checked = layouts.get(len(values)) or layouts_for(len(values))
        try:
            packed = native.pack(*values)
        except (struct.error, OverflowError):
            if code not in 'fd':
                raise
            # Scans mark beams out of range with NaN or infinity, which travel as null.
            return checked.pack(*[_NAN if value is None else value for value in values])
        # JSON has no infinity, so an infinite float32 is an overflow (or an infinite float
        # from elsewhere): the little-endian packer tells the two apart, raising on overflow.
        # Its sign-and-exponent byte is 0x7f or 0xff only for |x| >= 2 ** 127, inf and NaN.
        if code == 'f' and native is not checked:
            high = packed[3::4]
            if 0x7f in high or 0xff in high:
                return checked.pack(*values)
        return packed
    return pack


_PACKERS = {code: _number_packer(code) for code in set(STRUCT_CODES.values())}

__all__ = ['CdrEncoder', 'CompressedImageWriter', 'ENCAPSULATION', 'NotEncodable',
           'Unsupported', 'may_hold_booleans']

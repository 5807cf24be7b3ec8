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
Message types by name: which exist, and how names and frame ids are written.

A type name comes from the network (an echo frame's ``type``): :func:`message_class` imports
only a type that an installed package's generated ``msg`` module exports, never anything
else. The JSON codec (json_codec.py) and the CDR writer (cdr_writer.py) both look types up
here, and raise :class:`CodecError` for a value that does not fit one.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from pathlib import Path
import re
from typing import Any, FrozenSet, Tuple

# A rosidl-generated message class: SLOT_TYPES, get_fields_and_field_types(), __slots__;
# the generated code carries no type information.
MessageClass = Any

_TYPE_NAME = re.compile(r'([A-Za-z][A-Za-z0-9_]*)/(?:msg/)?([A-Z][A-Za-z0-9_]*)')


class CodecError(ValueError):
    """A JSON value that does not fit the message type; the message names the field."""

    def __init__(self, reason: str, path: Tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path

    def at(self, step: str) -> 'CodecError':
        """Return this error one level up (the path is built only when an error unwinds)."""
        return type(self)(self.reason, (step,) + self.path)

    def __str__(self) -> str:
        where = ''.join(s if s.startswith('[') else f'.{s}' for s in self.path).lstrip('.')
        return f'{where}: {self.reason}' if where else self.reason


class UnknownType(CodecError):
    """The message type is not installed locally (or the name is not a message type)."""


def message_class(type_name: str) -> MessageClass:
    """
    Return the Python class of ``pkg/msg/Type`` (or ``pkg/Type``).

    The name comes from the network: only a type that an installed package's ``msg`` module
    exports is imported, so a name can never make the bridge import an arbitrary module
    (importing ``pkg.msg`` runs ``pkg/__init__.py``).
    """
    match = _TYPE_NAME.fullmatch(type_name)
    if match is None:
        raise UnknownType(f'{type_name[:80]!r} is not a message type name (pkg/msg/Type)')
    package, name = match.groups()
    if name not in exported_messages(package):
        raise UnknownType(f'message type {type_name} is not installed')
    try:
        module = importlib.import_module(f'{package}.msg')
        cls = getattr(module, name)
    except (ImportError, AttributeError):
        raise UnknownType(f'message type {type_name} is not installed') from None
    if not hasattr(cls, 'SLOT_TYPES') or not hasattr(cls, 'get_fields_and_field_types'):
        raise UnknownType(f'{type_name} is not a ROS message type')
    return cls


@functools.lru_cache(maxsize=512)  # names from the network: bounded
def exported_messages(package: str) -> FrozenSet[str]:
    """Return the message types ``package``'s generated ``msg`` module exports, unimported."""
    spec = importlib.util.find_spec(package)  # a top-level name: found, not imported
    for location in (spec.submodule_search_locations or ()) if spec else ():
        index = Path(location) / 'msg' / '__init__.py'
        if index.is_file():  # rosidl writes one "from pkg.msg._type import Type" per type
            return frozenset(_EXPORTED.findall(index.read_text(errors='replace')))
    return frozenset()


_EXPORTED = re.compile(r'^from [\w.]+ import (\w+)', re.MULTILINE)


def prefixed_frame(prefix: str, frame_id: str) -> str:
    """Return a robot's frame id as mirrored (``header.frame_id``, ``child_frame_id``)."""
    # tf2 frame ids have no leading slash; an empty id means "no frame" and stays.
    return prefix + frame_id.lstrip('/') if frame_id else frame_id


def nested_class(kind: Any) -> MessageClass:
    """Return the class of a field whose IDL type is a message (``idl.NamespacedType``)."""
    package = next(iter(kind.namespaces))
    return message_class(f'{package}/msg/{kind.name}')


def type_name_of(cls: MessageClass) -> str:
    """Return ``pkg/msg/Type`` for a message class."""
    return f'{cls.__module__.split(".")[0]}/msg/{cls.__name__}'


__all__ = ['CodecError', 'exported_messages', 'message_class', 'MessageClass', 'nested_class',
           'prefixed_frame', 'type_name_of', 'UnknownType']

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
Every use of rclpy's and rosidl's private API, each with a self-test and a public fallback.

The bridge's hot paths lean on three internals that no release promises to keep, and on one
assumption about the rmw:

- ``take_queued``: ``subscription.handle.take_message`` takes what else is queued on a
  subscription from inside its callback (the executor hands over one message per wake-up);
- ``byte_slots``: a ``uint8[]`` field set as ``bytes`` through its slot (``message._data``),
  which rclpy serialises without the generated setter's per-byte checks;
- ``slot_construction``: a message built with ``cls.__new__`` and stores into its slots,
  bypassing the generated constructor and setters (codec.py checks the values itself);
- ``cdr_publish``: the rmw takes plain little-endian CDR (XCDR1) from
  ``Publisher.publish(bytes)``, which cdr_writer.py writes straight from an echo frame's JSON.

:func:`fast_paths` tests the last three on real messages once, round-tripping them through
rclpy's own serialisation, and logs what it chose; ``take_queued`` is tested on its first
real use and turned off for good if it fails. The public paths are always correct, only
slower: ``array.array('B', data)`` for bytes, the constructor and setters for messages,
publishing message objects, the executor's own delivery for queued messages.
``ROBOFLARE_FAST_PATHS=0`` turns every fast path off (the tests run both ways), or a comma
list names those to turn off (fast_paths.py).
"""

from __future__ import annotations

import array
from dataclasses import dataclass
import logging
from typing import Any, Callable, Mapping, Optional

from ..common.fast_paths import switched_off

_log = logging.getLogger(__name__)


@dataclass
class FastPaths:
    """Which internals the running rclpy supports (True: the fast path is used)."""

    take_queued: bool = True
    byte_slots: bool = True
    slot_construction: bool = True
    cdr_publish: bool = True


_chosen: Optional[FastPaths] = None


def fast_paths() -> FastPaths:
    """Return the fast paths in use, testing them on the first call (idempotent tests)."""
    global _chosen
    if _chosen is None:
        _chosen = _detect()
    return _chosen


def _detect() -> FastPaths:
    names = ('take_queued', 'byte_slots', 'slot_construction', 'cdr_publish')
    chosen = FastPaths(take_queued=not switched_off('take_queued'),
                       byte_slots=not switched_off('byte_slots') and _byte_slots_work(),
                       slot_construction=(not switched_off('slot_construction')
                                          and _slot_construction_works()))
    chosen.cdr_publish = not switched_off('cdr_publish') and _cdr_publish_works()
    _log.info('rclpy fast paths: %s', ', '.join(
        f'{name} {"on" if getattr(chosen, name) else "off (public API)"}' for name in names))
    return chosen


def _byte_slots_work() -> bool:
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import CompressedImage
    payload = bytes(range(256)) * 3
    try:
        message = CompressedImage(format='jpeg')
        message._data = payload
        back = deserialize_message(serialize_message(message), CompressedImage)
        return bytes(back.data) == payload and back.format == 'jpeg'
    except Exception:  # noqa: BLE001 - any failure means: use the public path
        return False


def _slot_construction_works() -> bool:
    from geometry_msgs.msg import Point, PoseStamped
    from rclpy.serialization import serialize_message
    try:
        expected = PoseStamped()
        expected.header.frame_id = 'map'
        expected.pose.position = Point(x=1.5, y=-2.0, z=0.25)
        built = PoseStamped.__new__(PoseStamped)
        for slot in PoseStamped.__slots__:
            setattr(built, slot, getattr(expected, slot))
        point = Point.__new__(Point)
        point._x, point._y, point._z = 1.5, -2.0, 0.25
        built.pose.position = point
        return serialize_message(built) == serialize_message(expected)
    except Exception:  # noqa: BLE001 - any failure means: use the public path
        return False


def _cdr_publish_works() -> bool:
    try:
        from builtin_interfaces.msg import Time
        from geometry_msgs.msg import Transform, TransformStamped, Vector3
        from rclpy.serialization import deserialize_message, serialize_message
        from sensor_msgs.msg import LaserScan, NavSatFix, NavSatStatus
        from std_msgs.msg import Header
        from tf2_msgs.msg import TFMessage

        from .cdr_writer import CdrEncoder
        samples = [
            (TFMessage(transforms=[
                TransformStamped(header=Header(stamp=Time(sec=7, nanosec=9), frame_id='odom'),
                                 child_frame_id='base',
                                 transform=Transform(translation=Vector3(x=1.5))),
                TransformStamped(child_frame_id='laser_frame')]),
             {'transforms': [{'header': {'stamp': {'sec': 7, 'nanosec': 9}, 'frame_id': 'odom'},
                              'child_frame_id': 'base',
                              'transform': {'translation': {'x': 1.5}}},
                             {'child_frame_id': 'laser_frame'}]}),
            (LaserScan(header=Header(frame_id='l'), angle_min=-1.0, ranges=[1.0, 2.5, 3.0],
                       intensities=[7.0]),
             {'header': {'frame_id': 'l'}, 'angle_min': -1.0, 'ranges': [1.0, 2.5, 3.0],
              'intensities': [7]}),
            (NavSatFix(status=NavSatStatus(status=-1), latitude=48.1,
                       position_covariance=[0.5] * 9),
             {'status': {'status': -1}, 'latitude': 48.1, 'position_covariance': [0.5] * 9})]
        encoder = CdrEncoder()
        for expected, obj in samples:
            cls = type(expected)
            data = encoder.encode(f'{cls.__module__.split(".")[0]}/msg/{cls.__name__}', obj)
            if (len(data) != len(serialize_message(expected))
                    or deserialize_message(data, cls) != expected):
                return False
        return True
    except Exception:  # noqa: BLE001 - any failure means: publish message objects
        return False


def set_bytes(message: Any, field: str, data: bytes) -> None:
    """Set a ``uint8[]`` field of ``message`` to ``data`` as cheaply as rclpy allows."""
    if fast_paths().byte_slots:
        setattr(message, '_' + field, data)  # serialised from the buffer, no per-byte check
    else:
        setattr(message, field, array.array('B', data))  # a copy, checked once as a whole


def take_queued(subscription: Any, callback: Callable[[Any, Mapping[str, Any]], None],
                limit: int) -> int:
    """
    Take and handle up to ``limit`` messages queued on ``subscription``; return how many.

    Without the fast path (or once it has failed) this takes nothing: the executor then
    delivers the queued messages one per wake-up.
    """
    paths = fast_paths()
    if not paths.take_queued:
        return 0
    handle = subscription.handle
    for count in range(limit):
        try:
            with handle:
                taken = handle.take_message(subscription.msg_type, subscription.raw)
        except (AttributeError, TypeError) as exc:
            paths.take_queued = False
            _log.warning('rclpy fast path take_queued failed (%s); the executor delivers '
                         'queued messages one by one from now on', exc)
            return count
        if taken is None:
            return count
        callback(*taken)
    return limit


__all__ = ['FastPaths', 'fast_paths', 'set_bytes', 'take_queued']

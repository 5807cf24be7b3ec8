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
The node's parameters: declared with descriptions, validated once into a BridgeConfig.

A wrong value is refused at start-up with a message that names the parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Sequence, Tuple

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.node import Node

from .transport.wire import LOG_LEVELS


class ParameterError(ValueError):
    """A parameter has a value the bridge cannot use; the message names it."""


@dataclass(frozen=True)
class BridgeConfig:
    """Everything the bridge was configured with (see config/bridge.yaml)."""

    base_url: str = ''
    token_file: str = ''
    allow_insecure_http: bool = False
    robots: Tuple[str, ...] = ()
    deny_robots: Tuple[str, ...] = ()
    robots_poll_interval_s: float = 30.0
    shard_count: int = 1
    shard_index: int = 0
    topics: Tuple[str, ...] = ('/**',)
    deny_topics: Tuple[str, ...] = ()
    namespace_format: str = '/roboflare/{robot}'
    frame_prefix_format: str = '{robot}/'
    fleet_frame: str = 'roboflare_fleet'
    camera: bool = True
    decode_images: bool = True
    camera_frame_id: str = 'camera_optical_frame'
    camera_max_frame_bytes: int = 16 << 20
    remote_logs: bool = True
    forward_logs: bool = False
    robot_id: str = ''
    log_min_level: str = 'info'
    log_ignore_nodes: Tuple[str, ...] = ()
    spool_dir: str = '~/.ros/roboflare_bridge/spool'
    spool_max_bytes: int = 64 << 20
    log_ack_timeout_s: float = 10.0
    request_timeout_s: float = 10.0
    deploy_poll_interval_s: float = 1.0
    diagnostics_period_s: float = 1.0
    stream_ping_interval_s: float = 10.0
    stream_ping_timeout_s: float = 10.0
    stream_compression: bool = True
    transient_local_topics: Tuple[str, ...] = ()
    qos_overrides: Tuple[Tuple[str, str], ...] = ()
    topic_throttle: Dict[str, int] = field(default_factory=dict)
    echo_max_frame_bytes: int = 16 << 20


DESCRIPTIONS = {
    'base_url': 'Roboflare API base URL; empty = ROBOFLARE_BASE_URL, credentials.toml, default',
    'token_file': 'file holding the API token; empty = ROBOFLARE_TOKEN or credentials.toml',
    'allow_insecure_http': 'allow a plain http:// base_url to a non-loopback host',
    'robots': 'robots to mirror: ids, names or globs over either ("*" = every robot)',
    'deny_robots': 'robots never mirrored: ids, names or globs, applied after robots',
    'robots_poll_interval_s': "period of listing the org's robots: joins, leaves, renames, "
                              'offline robots',
    'shard_count': 'bridges sharing the robots; each robot goes to one, by a hash of its id',
    'shard_index': "this bridge's shard, 0 to shard_count - 1; shard 0 alone serves the "
                   'control plane and forwards logs',
    'topics': 'remote topics to mirror (globs: * within a name level, ** across levels)',
    'deny_topics': 'remote topics never mirrored (globs), applied after topics',
    'namespace_format': 'local namespace of a mirrored robot; {robot} = its ROS-safe name',
    'frame_prefix_format': 'prefix of every mirrored frame id; {robot} = its ROS-safe name',
    'fleet_frame': "frame linked (identity) to every robot's TF root, one rviz fixed frame "
                   'for all robots; empty = none',
    'camera': "mirror the robots' camera streams",
    'decode_images': 'publish decoded camera/image_raw (only while it has subscribers)',
    'camera_frame_id': 'frame id of mirrored camera images (before the frame prefix)',
    'camera_max_frame_bytes': 'largest JPEG accepted; a larger frame is dropped (reconnect)',
    'remote_logs': "republish the robots' logs on <namespace>/rosout",
    'forward_logs': "forward this machine's /rosout upstream as robot robot_id",
    'robot_id': 'the robot this bridge runs on (for forward_logs)',
    'log_min_level': 'lowest level forwarded upstream: debug, info, warn, error or fatal',
    'log_ignore_nodes': 'nodes whose /rosout records are never forwarded',
    'spool_dir': 'directory of the on-disk spool of unacknowledged log batches',
    'spool_max_bytes': 'spool size limit; the oldest records are dropped beyond it',
    'log_ack_timeout_s': 'a log batch not acknowledged within this is resent (the oldest '
                         'alone, doubling up to 30 s while acks stay away)',
    'request_timeout_s': 'bound on every control-plane call, service or action step',
    'deploy_poll_interval_s': 'how often a deploy goal polls its deployment',
    'diagnostics_period_s': 'period of /diagnostics',
    'stream_ping_interval_s': 'WebSocket ping period (detects half-open connections)',
    'stream_ping_timeout_s': 'a stream without a pong for this long is reconnected',
    'stream_compression': 'offer permessage-deflate on topic echo and log streams (JSON '
                          'shrinks several times; costs CPU: off on a LAN); camera never',
    'transient_local_topics': 'remote topics mirrored transient-local, depth 1, for late '
                              'subscribers (globs); /tf_static, /map, /robot_description '
                              'always are',
    'qos_overrides': 'per-topic QoS: "<topic>=best_effort|reliable|transient_local|volatile" '
                     'entries (globs; later entries win)',
    'topic_throttle': 'per-topic minimum period: "<remote topic>=<milliseconds>" entries',
    'echo_max_frame_bytes': 'largest topic echo frame mirrored; a larger one is refused '
                            '(counted, named in diagnostics) and the stream goes on',
}

_ARRAYS = {'robots', 'deny_robots', 'topics', 'deny_topics', 'log_ignore_nodes', 'qos_overrides',
           'topic_throttle', 'transient_local_topics'}
# What ``ros2 param set`` may change while the bridge runs (the fleet applies it); every
# other parameter is read-only, and rclpy refuses to set it, naming it.
RUNTIME = frozenset({'robots', 'deny_robots', 'robots_poll_interval_s', 'topics',
                     'deny_topics', 'topic_throttle', 'camera', 'decode_images',
                     'remote_logs'})
# Seconds may be written 5 or 5.0: accept both (a static DOUBLE would refuse 5).
_SECONDS = {'robots_poll_interval_s', 'request_timeout_s', 'deploy_poll_interval_s',
            'diagnostics_period_s', 'stream_ping_interval_s', 'stream_ping_timeout_s',
            'log_ack_timeout_s'}


def declare_and_read(node: Node) -> BridgeConfig:
    """Declare every parameter on node and return the validated configuration."""
    defaults = BridgeConfig()
    values: Dict[str, Any] = {}
    for name, description in DESCRIPTIONS.items():
        default = getattr(defaults, name)
        descriptor = ParameterDescriptor(description=description,
                                         read_only=name not in RUNTIME)
        try:
            if name in _ARRAYS or name in _SECONDS:
                # Dynamic typing: a params file's empty list arrives with no element type,
                # and seconds may come as integers. build_config checks the values.
                descriptor.dynamic_typing = True
                value = node.declare_parameter(name, None, descriptor).value
            else:
                value = node.declare_parameter(name, default, descriptor).value
        except InvalidParameterTypeException as exc:
            raise ParameterError(f'parameter {name!r}: {exc}') from None
        values[name] = value
    return build_config(values)


def build_config(values: Dict[str, Any]) -> BridgeConfig:
    """Validate raw parameter values (pure, testable without ROS)."""
    defaults = BridgeConfig()
    out: Dict[str, Any] = {}
    for name in DESCRIPTIONS:
        value = values.get(name)
        if name in _ARRAYS:
            out[name] = _string_list(name, value, getattr(defaults, name))
        elif name in _SECONDS and isinstance(value, int) and not isinstance(value, bool):
            out[name] = float(value)
        else:
            out[name] = getattr(defaults, name) if value is None else value
    try:
        out['qos_overrides'] = parse_qos_overrides(out['qos_overrides'])
    except ValueError as exc:
        raise ParameterError(f"parameter 'qos_overrides': {exc}") from None
    out['topic_throttle'] = _topic_throttle(out['topic_throttle'])
    config = BridgeConfig(**out)
    _validate(config)
    return config


def _string_list(name: str, value: Any, default: Any) -> Any:
    if value is None:
        return default
    if isinstance(value, (list, tuple)) and not value:
        return ()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ParameterError(f'parameter {name!r} must be a list of strings, got {value!r}')
    # Params files cannot hold an empty list, so [''] stands for "none".
    return tuple(v.strip() for v in value if v.strip())


def _topic_throttle(entries: Sequence[str]) -> Dict[str, int]:
    throttle = {}
    for entry in entries:
        topic, _, millis = entry.partition('=')
        try:
            throttle[topic.strip()] = int(millis)
        except ValueError:
            millis = '-1'
        if int(millis) < 0:
            raise ParameterError(f"parameter 'topic_throttle': {entry!r} is not "
                                 '"<topic>=<milliseconds>"')
    return throttle


def _validate(config: BridgeConfig) -> None:
    def fail(name: str, why: str) -> None:
        raise ParameterError(f'parameter {name!r} {why}, got {getattr(config, name)!r}')

    for name in ('base_url', 'token_file', 'namespace_format', 'frame_prefix_format',
                 'fleet_frame', 'camera_frame_id', 'robot_id', 'log_min_level', 'spool_dir'):
        if not isinstance(getattr(config, name), str):
            fail(name, 'must be a string')
    for name in ('camera', 'decode_images', 'remote_logs', 'forward_logs',
                 'allow_insecure_http', 'stream_compression'):
        if not isinstance(getattr(config, name), bool):
            fail(name, 'must be true or false')
    for name in _SECONDS:
        value = getattr(config, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            fail(name, 'must be a number > 0')
    if not isinstance(config.spool_max_bytes, int) or config.spool_max_bytes < 64 << 10:
        fail('spool_max_bytes', 'must be an integer >= 65536')
    for name in ('camera_max_frame_bytes', 'echo_max_frame_bytes'):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or not 1024 <= value <= 1 << 30:
            fail(name, 'must be an integer between 1024 and 2^30')
    if config.log_min_level not in LOG_LEVELS:
        fail('log_min_level', f'must be one of {", ".join(LOG_LEVELS)}')
    if config.forward_logs and not config.robot_id:
        fail('robot_id', 'must be set when forward_logs is true')
    for name in ('namespace_format', 'frame_prefix_format'):
        try:
            getattr(config, name).format(robot='x')
        except (KeyError, IndexError, ValueError):
            fail(name, 'may only use the {robot} placeholder')
    if '{robot}' not in config.namespace_format:
        fail('namespace_format', 'must contain {robot} so robots do not collide')
    if not config.namespace_format.startswith('/'):
        fail('namespace_format', 'must be absolute (start with /)')
    for name in ('topics', 'deny_topics', 'transient_local_topics'):
        for pattern in getattr(config, name):
            if not pattern.startswith('/'):
                fail(name, f'holds {pattern!r}, which is not an absolute topic glob')
    if len(set(config.robots)) != len(config.robots):
        fail('robots', 'lists a robot twice')
    if not isinstance(config.shard_count, int) or config.shard_count < 1:
        fail('shard_count', 'must be an integer >= 1')
    if (not isinstance(config.shard_index, int)
            or not 0 <= config.shard_index < config.shard_count):
        fail('shard_index', f'must be from 0 to shard_count - 1 ({config.shard_count - 1})')
    if config.forward_logs and config.shard_index != 0:
        fail('forward_logs', "is for shard 0 only (one bridge forwards this machine's logs)")


RELIABILITY_POLICIES = ('reliable', 'best_effort')  # the words of qos_overrides
DURABILITY_POLICIES = ('transient_local', 'volatile')


def parse_qos_overrides(entries: Sequence[str]) -> Tuple[Tuple[str, str], ...]:
    """
    Parse ``"<topic glob>=<policy>"`` entries; raise ValueError naming a bad one.

    A topic may have one reliability and one durability entry; the same pattern given two
    reliabilities (or two durabilities) is refused as ambiguous.
    """
    parsed = []
    seen = {}
    policies = RELIABILITY_POLICIES + DURABILITY_POLICIES
    for entry in entries:
        pattern, sep, policy = (part.strip() for part in entry.partition('='))
        if not sep or not pattern.startswith('/') or policy not in policies:
            raise ValueError(f'{entry!r} is not "<topic>=<policy>" with an absolute topic '
                             f'(globs allowed) and a policy among {", ".join(policies)}')
        aspect = 'reliability' if policy in RELIABILITY_POLICIES else 'durability'
        earlier = seen.setdefault((pattern, aspect), policy)
        if earlier != policy:
            raise ValueError(f'{pattern} is given both {earlier} and {policy}')
        parsed.append((pattern, policy))
    return tuple(parsed)


def ros_name(robot_name: str) -> str:
    """Return a robot's name as a valid ROS name component (docs/ros-api.md's rule)."""
    name = ''.join(c if c.isascii() and (c.isalnum() or c == '_') else '_'
                   for c in robot_name.lower())
    if not name or name[0].isdigit():
        name = 'r_' + name
    return name


__all__ = ['BridgeConfig', 'ParameterError', 'RUNTIME', 'declare_and_read', 'build_config',
           'ros_name']

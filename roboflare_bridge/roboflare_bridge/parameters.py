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
The bridge's parameters: one table, read by the node, the launch file, the docs and the tests.

Each parameter is one field of :class:`BridgeConfig`, declared with its section's helper:
its name, type (the annotation), default, description, range or choices, whether
``ros2 param set`` may change it while the bridge runs, and its check. Everything else is
derived from that table (:data:`PARAMETERS`): the node's parameter descriptors, so that
``ros2 param describe`` shows each type and range and rclpy itself refuses a value out of
range (:func:`descriptor`, :func:`declare_and_read`); validation (:func:`build_config`,
:func:`checked`); the launch file's arguments (node/launch_arguments.py); and
``config/bridge.yaml`` and the tables of the README and docs/ros-api.md (:func:`render_yaml`,
:func:`render_markdown`, ``python -m roboflare_bridge.parameters --yaml|--markdown``; tests
hold the files to them).

A wrong value is refused with a message that names the parameter.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
import functools
import json
import logging
import sys
import typing
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from rcl_interfaces.msg import (
    FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType,
)
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.node import Node
from rclpy.parameter import Parameter as RosParameter

from .transport.wire import LOG_LEVELS

SPEC = 'roboflare_bridge.parameter'
_log = logging.getLogger(__name__)
Check = Callable[[Any], Optional[str]]  # why a value is wrong, or None


class ParameterError(ValueError):
    """A parameter has a value the bridge cannot use; the message names it."""


@dataclass(frozen=True)
class Spec:
    """What the table says of a parameter besides its name, type and default."""

    section: str
    description: str
    runtime: bool = False  # ros2 param set may change it while the bridge runs
    minimum: Optional[float] = None  # a number's range, both ends included
    maximum: Optional[float] = None
    choices: Tuple[str, ...] = ()
    constraints: str = ''  # what ``check`` holds the value to, in words
    check: Optional[Check] = None
    parse: Optional[Callable[[Tuple[str, ...]], Any]] = None  # string array -> config value


def _parameter(section: str, default: Any, description: str, **spec: Any) -> Any:
    metadata = {SPEC: Spec(section, description, **spec)}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=metadata)
    return field(default=default, metadata=metadata)


control = functools.partial(_parameter, 'the control plane')
mirrored = functools.partial(_parameter, 'mirrored robots (remote -> local)')
upstream = functools.partial(_parameter, "upstream logs (this machine's /rosout -> Roboflare)")
health = functools.partial(_parameter, 'health')

SECONDS = {'minimum': 0.01, 'maximum': 3600.0}
FRAME_BYTES = {'minimum': 1024, 'maximum': 1 << 30}
RELIABILITY_POLICIES = ('reliable', 'best_effort')  # the words of qos_overrides
DURABILITY_POLICIES = ('transient_local', 'volatile')
RESTAMP_MODES = ('none', 'offset', 'receipt')


# -- checks and parsers ---------------------------------------------------------------------

def _absolute_globs(value: Tuple[str, ...]) -> Optional[str]:
    relative = [pattern for pattern in value if not pattern.startswith('/')]
    return f'holds {relative[0]!r}, which is not an absolute topic glob' if relative else None


def _no_repeats(value: Tuple[str, ...]) -> Optional[str]:
    return 'lists a robot twice' if len(set(value)) != len(value) else None


def _robot_placeholder(value: str) -> Optional[str]:
    try:
        value.format(robot='x')
    except (KeyError, IndexError, ValueError):
        return 'may only use the {robot} placeholder'
    return None


def _namespace_format(value: str) -> Optional[str]:
    if not value.startswith('/'):
        return 'must be absolute (start with /)'
    if '{robot}' not in value:
        return 'must contain {robot} so robots do not collide'
    return _robot_placeholder(value)


def parse_qos_overrides(entries: Sequence[str]) -> Tuple[Tuple[str, str], ...]:
    """
    Parse ``"<topic glob>=<policy>"`` entries; raise ValueError naming a bad one.

    A topic may have one reliability and one durability entry; the same pattern given two
    reliabilities (or two durabilities) is refused as ambiguous.
    """
    parsed = []
    seen: Dict[Tuple[str, str], str] = {}
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


def parse_topic_throttle(entries: Sequence[str]) -> Dict[str, int]:
    """Parse ``"<topic>=<milliseconds>"`` entries; raise ValueError naming a bad one."""
    throttle = {}
    for entry in entries:
        topic, _, millis = (part.strip() for part in entry.partition('='))
        if not topic or not millis.isdigit():
            raise ValueError(f'{entry!r} is not "<topic>=<milliseconds>"')
        throttle[topic] = int(millis)
    return throttle


# -- the table ------------------------------------------------------------------------------

@dataclass(frozen=True)
class BridgeConfig:
    """Every parameter of the bridge, validated (see :func:`build_config`)."""

    base_url: str = control(
        '', 'Roboflare API base URL; empty: ROBOFLARE_BASE_URL, then credentials.toml, then '
        'https://api.roboflare.com')
    token_file: str = control(
        '', 'file holding the API token (never the token itself); empty: ROBOFLARE_TOKEN, '
        'then credentials.toml')
    allow_insecure_http: bool = control(
        False, 'allow a plain http:// base_url to a host other than loopback (the token then '
        'travels in clear)')
    request_timeout_s: float = control(
        10.0, 'bound on every control-plane call, service or deploy step, in seconds',
        **SECONDS)
    deploy_poll_interval_s: float = control(
        1.0, 'how often a deploy goal polls its deployment for feedback, in seconds', **SECONDS)

    robots: Tuple[str, ...] = mirrored(
        (), 'robots to mirror: ids, names or globs over either, e.g. [rbt_0001, "warehouse-*"] '
        'or ["*"]', runtime=True, check=_no_repeats, constraints='no entry twice')
    deny_robots: Tuple[str, ...] = mirrored(
        (), 'robots never mirrored (ids, names or globs), applied after robots', runtime=True)
    robots_poll_interval_s: float = mirrored(
        30.0, "how often the org's robots are listed (joins, leaves, renames, offline "
        'robots), in seconds', runtime=True, minimum=0.1, maximum=86400.0)
    shard_count: int = mirrored(
        1, 'bridges sharing the robots, each robot going to one by a hash of its id '
        '(bridge.launch.py shards:=N sets it)', minimum=1, maximum=1024)
    shard_index: int = mirrored(
        0, "this bridge's shard, from 0 to shard_count - 1; shard 0 alone serves the control "
        'plane and forwards logs', minimum=0, maximum=1023, constraints='below shard_count')
    topics: Tuple[str, ...] = mirrored(
        ('/**',), 'remote topics to mirror (globs: * within a name level, ** across levels)',
        runtime=True, check=_absolute_globs, constraints='absolute topic globs')
    deny_topics: Tuple[str, ...] = mirrored(
        (), 'remote topics never mirrored (globs), applied after topics', runtime=True,
        check=_absolute_globs, constraints='absolute topic globs')
    namespace_format: str = mirrored(
        '/roboflare/{robot}', 'local namespace of a mirrored robot; {robot} is its name made '
        'a ROS name', check=_namespace_format,
        constraints='absolute, with the {robot} placeholder and no other')
    frame_prefix_format: str = mirrored(
        '{robot}/', 'prefix of every mirrored frame id (headers, child_frame_id, TF)',
        check=_robot_placeholder, constraints='no placeholder but {robot}')
    fleet_frame: str = mirrored(
        'roboflare_fleet', "frame linked (identity) above every robot's TF roots: one rviz "
        'fixed frame for all robots; empty: none')
    transient_local_topics: Tuple[str, ...] = mirrored(
        (), 'remote topics mirrored latched (transient-local, depth 1) for late subscribers '
        '(globs); /tf_static, /map and /robot_description always are', check=_absolute_globs,
        constraints='absolute topic globs')
    qos_overrides: Tuple[Tuple[str, str], ...] = mirrored(
        (), 'per-topic QoS: "<topic>=best_effort|reliable|transient_local|volatile" entries '
        '(globs; later entries win), e.g. ["/scan=best_effort"]', parse=parse_qos_overrides,
        constraints='"<absolute topic glob>=<policy>"')
    echo_max_frame_bytes: int = mirrored(
        16 << 20, 'largest topic echo frame mirrored; a larger one (a huge map) is refused '
        'by topic, named in diagnostics, and the stream goes on', **FRAME_BYTES)
    topic_throttle: Dict[str, int] = mirrored(
        {}, 'per-topic minimum period asked of the robot: "<remote topic>=<milliseconds>" '
        'entries, e.g. ["/scan=200"]', runtime=True, parse=parse_topic_throttle,
        constraints='"<topic>=<milliseconds>"')
    camera: bool = mirrored(
        True, "mirror the robots' cameras on camera/image_raw/compressed", runtime=True)
    decode_images: bool = mirrored(
        True, 'also publish camera/image_raw (bgr8), decoded only while it has subscribers',
        runtime=True)
    camera_frame_id: str = mirrored(
        'camera_optical_frame', "frame id of camera images, before the robot's prefix")
    camera_max_frame_bytes: int = mirrored(
        16 << 20, 'largest JPEG frame accepted; a larger one is dropped (counted) and the '
        'stream reconnects', **FRAME_BYTES)
    remote_logs: bool = mirrored(
        True, "republish each robot's logs on <namespace>/rosout", runtime=True)
    mirror_on_demand: bool = mirrored(
        True, 'stream from the cloud only what something local subscribes to: a topic while '
        'its publisher has a subscriber, the camera and logs likewise; latched topics always; '
        'false streams every selected topic all the time', runtime=True)
    on_demand_linger_s: float = mirrored(
        5.0, 'how long a topic, camera or log stream keeps flowing after its last local '
        'subscriber left, in seconds (a display toggled off and on must not thrash the robot)',
        runtime=True, minimum=0.0, maximum=3600.0)
    restamp: str = mirrored(
        'none', "the stamps of each robot's messages and transforms: none (as the robot sent "
        "them), offset (shifted by the robot's measured clock offset: relative timing kept), "
        'receipt (the time the bridge received them: for robots with no usable clock)',
        runtime=True, choices=RESTAMP_MODES)

    forward_logs: bool = upstream(
        False, "forward this machine's /rosout upstream as robot robot_id (shard 0 only)")
    robot_id: str = upstream(
        '', 'the robot this bridge runs on; needed with forward_logs')
    log_min_level: str = upstream(
        'info', 'lowest level forwarded upstream', choices=LOG_LEVELS)
    log_ignore_nodes: Tuple[str, ...] = upstream(
        (), 'nodes whose records are never forwarded, with or without a leading / (the '
        'bridge itself never is)')
    spool_dir: str = upstream(
        '~/.ros/roboflare_bridge/spool', 'directory of the on-disk spool where '
        'unacknowledged batches wait, across restarts')
    spool_max_bytes: int = upstream(
        64 << 20, 'spool size limit; beyond it the lowest level goes first (debug, info, '
        'warn, then error), oldest first, and a marker record says what was dropped',
        minimum=64 << 10, maximum=1 << 40)
    log_collapse_window_s: float = upstream(
        1.0, "a node's identical records (level, message, source location) within this "
        'are forwarded once, then "last message repeated N times"; 0 forwards each, in '
        'seconds', minimum=0.0, maximum=3600.0)
    log_max_rate_per_node: float = upstream(
        0.0, 'records per second forwarded from one node at most (bursts of one second); '
        'what exceeds it is dropped and said by a marker record; 0: no limit',
        minimum=0.0, maximum=1e6)
    log_ack_timeout_s: float = upstream(
        10.0, 'a batch not acknowledged within this is resent (the oldest alone, its timeout '
        'doubling up to 30 s while acknowledgements stay away), in seconds', **SECONDS)

    diagnostics_period_s: float = health(1.0, 'period of /diagnostics, in seconds', **SECONDS)
    clock_warn_s: float = health(
        0.5, "a robot whose clock is off from this machine's by more than this is a WARN in "
        '/diagnostics (restamp compensates), in seconds', runtime=True, minimum=0.001,
        maximum=86400.0)
    stream_ping_interval_s: float = health(
        10.0, 'WebSocket ping period, to detect half-open connections, in seconds', **SECONDS)
    stream_ping_timeout_s: float = health(
        10.0, 'a stream without a pong for this long is reconnected, in seconds', **SECONDS)
    stream_compression: bool = health(
        True, 'offer permessage-deflate on topic echo and log streams (cameras never): JSON '
        'travels several times smaller for more CPU; false on a LAN')


@dataclass(frozen=True)
class Parameter:
    """One row of the table."""

    name: str
    kind: str  # 'bool', 'int', 'float', 'str' or 'string array'
    default: Any  # as BridgeConfig holds it
    spec: Spec

    @property
    def ros_default(self) -> Any:
        """Return the default as the parameter holds it (a string array is a list)."""
        if self.kind != 'string array':
            return self.default
        if isinstance(self.default, dict):
            return [f'{key}={value}' for key, value in self.default.items()]
        if self.default and isinstance(self.default[0], tuple):
            return ['='.join(pair) for pair in self.default]
        return list(self.default)

    @property
    def ros_type(self) -> int:
        return {'bool': ParameterType.PARAMETER_BOOL, 'int': ParameterType.PARAMETER_INTEGER,
                'float': ParameterType.PARAMETER_DOUBLE, 'str': ParameterType.PARAMETER_STRING,
                'string array': ParameterType.PARAMETER_STRING_ARRAY}[self.kind]

    def constraints(self) -> str:
        """Return the value's constraints in words (what ``ros2 param describe`` shows)."""
        words = []
        if self.spec.minimum is not None:
            words.append(f'from {_number(self.spec.minimum)} to {_number(self.spec.maximum)}')
        if self.spec.choices:
            words.append('one of ' + ', '.join(self.spec.choices))
        if self.spec.constraints:
            words.append(self.spec.constraints)
        return '; '.join(words)


def _number(value: Any) -> str:
    return f'{value:g}' if isinstance(value, float) else str(value)


def _kind(annotation: Any) -> str:
    if annotation in (bool, int, float, str):
        return annotation.__name__
    return 'string array'  # a tuple of strings, or what a parser makes of one


def _table() -> Tuple[Parameter, ...]:
    hints, defaults = typing.get_type_hints(BridgeConfig), BridgeConfig()
    return tuple(Parameter(item.name, _kind(hints[item.name]), getattr(defaults, item.name),
                           item.metadata[SPEC]) for item in fields(BridgeConfig))


PARAMETERS = _table()
BY_NAME = {parameter.name: parameter for parameter in PARAMETERS}
# What ``ros2 param set`` may change while the bridge runs (the fleet applies it); rclpy
# refuses to set any other, naming it.
RUNTIME = frozenset(parameter.name for parameter in PARAMETERS if parameter.spec.runtime)


# -- the node's side ------------------------------------------------------------------------

def descriptor(parameter: Parameter) -> ParameterDescriptor:
    """Return the descriptor a parameter is declared with: type, range, constraints."""
    spec = parameter.spec
    described = ParameterDescriptor(
        name=parameter.name, type=parameter.ros_type, description=spec.description,
        additional_constraints=parameter.constraints(), read_only=not spec.runtime)
    if spec.minimum is None or spec.maximum is None:
        return described
    if parameter.kind == 'int':
        described.integer_range = [IntegerRange(
            from_value=int(spec.minimum), to_value=int(spec.maximum), step=0)]
    else:
        described.floating_point_range = [FloatingPointRange(
            from_value=float(spec.minimum), to_value=float(spec.maximum), step=0.0)]
    return described


def declare_and_read(node: Node) -> BridgeConfig:
    """Declare every parameter on ``node``, with its type and range; return them validated."""
    values: Dict[str, Any] = {}
    for parameter in PARAMETERS:
        default = parameter.ros_default
        if default == []:  # an empty list has no element type: give the type alone
            default = RosParameter.Type.STRING_ARRAY
        try:
            values[parameter.name] = node.declare_parameter(
                parameter.name, default, descriptor(parameter)).value
        except InvalidParameterTypeException as exc:
            if parameter.kind != 'float':
                raise ParameterError(f'parameter {parameter.name!r} must be a '
                                     f'{_KIND_WORDS[parameter.kind]}: {exc}') from None
            # A params file's whole number for a floating-point parameter (5 for 5.0):
            # rclpy does not convert it, so this one is declared untyped and taken as 5.0.
            untyped = descriptor(parameter)
            untyped.type, untyped.dynamic_typing = ParameterType.PARAMETER_NOT_SET, True
            values[parameter.name] = node.declare_parameter(
                parameter.name, default, untyped).value
            _log.warning('parameter %s is given as a whole number, taken as %s; write %s to '
                         'declare it with its type and range', parameter.name,
                         float(values[parameter.name]), float(values[parameter.name]))
    return build_config(values)


_KIND_WORDS = {'bool': 'boolean (true or false)', 'int': 'whole number',
               'float': 'floating-point number (write 5.0, not 5)', 'str': 'string',
               'string array': 'list of strings'}


# -- validation -----------------------------------------------------------------------------

def build_config(values: Mapping[str, Any]) -> BridgeConfig:
    """
    Validate raw parameter values (missing or None: the default); pure, no ROS needed.

    Whole numbers are taken for floating-point parameters, as a params file may write them.
    """
    converted = {parameter.name: checked(parameter, values.get(parameter.name))
                 for parameter in PARAMETERS}
    config = BridgeConfig(**converted)
    _check_together(config)
    return config


def checked(parameter: Parameter, value: Any) -> Any:
    """Return one parameter's value as BridgeConfig holds it; raise ParameterError."""
    name, spec = parameter.name, parameter.spec

    def refuse(why: str) -> ParameterError:
        return ParameterError(f'parameter {name!r} {why}, got {value!r}')

    if value is None:
        return parameter.default
    if parameter.kind == 'string array':
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise refuse('must be a list of strings')
        # A params file cannot hold an empty list of strings: [""] stands for "none".
        value = tuple(v.strip() for v in value if v.strip())
        if spec.parse is not None:
            try:
                value = spec.parse(value)
            except ValueError as exc:
                raise ParameterError(f'parameter {name!r}: {exc}') from None
    elif parameter.kind == 'float' and type(value) is int:
        value = float(value)
    elif type(value).__name__ != parameter.kind:  # bool is not taken for int, nor int for str
        raise refuse(f'must be a {_KIND_WORDS[parameter.kind]}')
    if spec.minimum is not None and not spec.minimum <= value <= spec.maximum:
        raise refuse(f'must be from {_number(spec.minimum)} to {_number(spec.maximum)}')
    if spec.choices and value not in spec.choices:
        raise refuse(f'must be one of {", ".join(spec.choices)}')
    why = spec.check(value) if spec.check is not None else None
    if why:
        raise refuse(why)
    return value


def _check_together(config: BridgeConfig) -> None:
    """Refuse combinations no single parameter's check sees."""
    if config.forward_logs and not config.robot_id:
        raise ParameterError("parameter 'robot_id' must be set when forward_logs is true")
    if config.shard_index >= config.shard_count:
        raise ParameterError(f"parameter 'shard_index' must be from 0 to shard_count - 1 "
                             f'({config.shard_count - 1}), got {config.shard_index}')
    if config.forward_logs and config.shard_index != 0:
        raise ParameterError("parameter 'forward_logs' is for shard 0 only (one bridge "
                             "forwards this machine's logs)")


# -- the documents ---------------------------------------------------------------------------

def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return json.dumps(value)  # JSON strings, numbers and lists are YAML too


def render_yaml() -> str:
    """Return ``config/bridge.yaml``: every parameter with its default and description."""
    lines = ['# roboflare_bridge parameters, every one with its default (generated from',
             '# roboflare_bridge/parameters.py: python -m roboflare_bridge.parameters --yaml).',
             '# Override any of them as a launch argument (ros2 launch roboflare_bridge',
             '# bridge.launch.py robots:="[rbt_1, rbt_2]"), with -p, or in a copy of this file.',
             '/**:', '  ros__parameters:']
    section = ''
    for parameter in PARAMETERS:
        if parameter.spec.section != section:
            section = parameter.spec.section
            lines.append(f'    # -- {section} ' + '-' * max(4, 82 - len(section)))
        entry = f'    {parameter.name}: {_yaml_value(parameter.ros_default)}'
        lines.append(f'{entry:<44}# {parameter.spec.description}')
    return '\n'.join(lines) + '\n'


def render_markdown() -> str:
    """Return the parameter table of the README and docs/ros-api.md."""
    rows = ['| parameter | type | default | range, choices | run time | what it does |',
            '|---|---|---|---|---|---|']
    for parameter in PARAMETERS:
        default = _yaml_value(parameter.ros_default)
        rows.append(f'| `{parameter.name}` | {parameter.kind} | `{default}` | '
                    f'{parameter.constraints()} | {"yes" if parameter.spec.runtime else ""} | '
                    f'{parameter.spec.description} |')
    return '\n'.join(rows) + '\n'


def ros_name(robot_name: str) -> str:
    """Return a robot's name as a valid ROS name component (docs/ros-api.md's rule)."""
    name = ''.join(c if c.isascii() and (c.isalnum() or c == '_') else '_'
                   for c in robot_name.lower())
    if not name or name[0].isdigit():
        name = 'r_' + name
    return name


def main(argv: Optional[List[str]] = None) -> int:
    """Print ``config/bridge.yaml`` or the parameter table, as generated from the table."""
    parser = argparse.ArgumentParser(prog='python -m roboflare_bridge.parameters',
                                     description=main.__doc__)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument('--yaml', action='store_true', help='the params file')
    what.add_argument('--markdown', action='store_true', help="the docs' table")
    args = parser.parse_args(argv)
    sys.stdout.write(render_yaml() if args.yaml else render_markdown())
    return 0


__all__ = ['BridgeConfig', 'BY_NAME', 'build_config', 'checked', 'declare_and_read',
           'descriptor', 'DURABILITY_POLICIES', 'Parameter', 'ParameterError', 'PARAMETERS',
           'parse_qos_overrides', 'parse_topic_throttle', 'RELIABILITY_POLICIES',
           'RESTAMP_MODES',
           'render_markdown', 'render_yaml', 'ros_name', 'RUNTIME']

if __name__ == '__main__':
    sys.exit(main())

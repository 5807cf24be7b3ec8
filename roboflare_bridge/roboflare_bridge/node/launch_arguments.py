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
The launch file's arguments, checked: pure Python, so the rules are tested without launch.

``bridge.launch.py`` declares one argument per parameter (the parameter table,
parameters.py) and turns each non-empty one into a parameter override with
:func:`overrides`; a wrong value raises :class:`LaunchArgumentError` naming the argument,
which ``ros2 launch`` reports before it exits with a non-zero code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import yaml

from ..parameters import build_config, checked, Parameter, ParameterError, PARAMETERS
from ..transport.wire import LOG_LEVELS  # ROS's --log-level severities are these words


class LaunchArgumentError(ValueError):
    """A launch argument has a value the bridge cannot use; the message names it."""


def overrides(arguments: Mapping[str, str]) -> Dict[str, Any]:
    """
    Return the parameter overrides that the launch's non-empty arguments ask for.

    Every parameter is a launch argument of its name, empty by default: empty keeps the
    params file's value. A value is read as the params file's (YAML: ``true``, ``5.0``,
    ``[a, b]``, where a whole number stands for a floating-point one too); a list may also
    be one entry without brackets (``robots:=warehouse-*``), never empty.
    """
    result: Dict[str, Any] = {}
    for parameter in PARAMETERS:
        text = arguments.get(parameter.name, '').strip()
        if text:
            value = _read(parameter, text)
            try:
                checked(parameter, value)
            except ParameterError as exc:
                raise LaunchArgumentError(str(exc).replace('parameter', 'launch argument', 1))
            result[parameter.name] = value
    return result


def _read(parameter: Parameter, text: str) -> Any:
    """Return a launch argument's text as the parameter's value (not yet checked)."""
    name = parameter.name
    if parameter.kind == 'str':
        return os.path.expanduser(text) if name.endswith(('_file', '_dir')) else text
    if parameter.kind == 'string array' and not text.startswith('['):
        return [text]  # one entry, e.g. "*" (YAML would read an alias)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = str(exc).splitlines()[0]
        raise LaunchArgumentError(f'launch argument {name!r} is not valid YAML ({problem}): '
                                  f'{text!r}') from None
    if parameter.kind == 'float' and type(value) is int:
        return float(value)
    if parameter.kind != 'string array':
        return value
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value)):
        raise LaunchArgumentError(
            f'launch argument {name!r} must be one entry or a list of them, like '
            f'"[rbt_0001, \'warehouse-*\']"; leave it empty to keep the params file\'s '
            f'value; got {text!r}')
    return [str(v) for v in value]  # ids that YAML reads as numbers


def shards(text: str) -> List[Tuple[str, Dict[str, Any]]]:
    """
    Return each shard's node name and parameters for ``shards:=N``.

    Shard 0 keeps the node's name (its services and actions are the control plane) and
    forwards logs if asked; the others mirror their share of the robots only.
    """
    try:
        count = int(text or '1')
    except ValueError:
        count = 0
    if not 1 <= count <= 64:
        raise LaunchArgumentError(f"launch argument 'shards' must be an integer from 1 to 64, "
                                  f'got {text!r}')
    if count == 1:
        return [('roboflare_bridge', {})]
    return [('roboflare_bridge' if index == 0 else f'roboflare_bridge_shard_{index}',
             {'shard_count': count, 'shard_index': index,
              **({} if index == 0 else {'forward_logs': False})})
            for index in range(count)]


def rviz_config_path() -> Path:
    """Return where ``rviz:=true`` writes its config (``$ROS_HOME``, else ``~/.ros``)."""
    home = os.environ.get('ROS_HOME') or os.path.join('~', '.ros')
    return Path(home).expanduser() / 'roboflare_bridge' / 'fleet.rviz'


def prepare_rviz(arguments: Mapping[str, str], params_file: str) -> Tuple[Optional[Path], str]:
    """
    Write an rviz config for the robots the bridge is launched with; say what was done.

    The robots and the settings that name topics and frames come from the params file and
    the launch's overrides, as the bridge gets them. Returns (None, why) when there is
    nothing to show.
    """
    from ..tools.rviz_config import parameters_from_file, RvizConfigError, write_config
    values = parameters_from_file(check_params_file(params_file))
    values.update(overrides(arguments))
    try:
        config = build_config(values)
    except ParameterError as exc:
        raise LaunchArgumentError(str(exc)) from None
    if not config.robots:
        return None, 'rviz: no robots to show; give the robots argument'
    path = rviz_config_path()
    try:
        write_config(config.robots, config, path)
    except (RvizConfigError, OSError) as exc:
        return None, f'rviz: no config written: {exc}'
    return path, f'rviz: config for {", ".join(config.robots)} written to {path}'


def check_params_file(path: str) -> str:
    """Return ``path`` if it is a readable file, else raise naming it."""
    if not os.path.isfile(path):
        raise LaunchArgumentError(f"launch argument 'params_file': no such file: {path}")
    return path


__all__ = ['LOG_LEVELS', 'LaunchArgumentError', 'check_params_file', 'overrides',
           'prepare_rviz', 'rviz_config_path', 'shards']

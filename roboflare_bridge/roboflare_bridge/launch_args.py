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

``bridge.launch.py`` turns each non-empty argument into a parameter override with
:func:`overrides`; a wrong value raises :class:`LaunchArgumentError` naming the argument,
which ``ros2 launch`` reports before it exits with a non-zero code.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Mapping

import yaml

# ROS's --log-level severities are the contract's level names.
from .frames import LOG_LEVELS
# Launch arguments that override the parameter of the same name when not empty.
OVERRIDABLE = ('robots', 'base_url', 'token_file', 'forward_logs', 'robot_id')


class LaunchArgumentError(ValueError):
    """A launch argument has a value the bridge cannot use; the message names it."""


def overrides(arguments: Mapping[str, str]) -> Dict[str, Any]:
    """Return the parameter overrides for the non-empty overridable arguments."""
    result: Dict[str, Any] = {}
    for name in OVERRIDABLE:
        text = arguments.get(name, '')
        if text == '':
            continue
        try:
            # "[a, b]" -> a list, "true" -> a bool: the same YAML rules as the params file.
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            problem = str(exc).splitlines()[0]
            raise LaunchArgumentError(f'launch argument {name!r} is not valid YAML '
                                      f'({problem}): {text!r}') from None
        if name == 'robots':
            value = _robot_list(value, text)
        elif name == 'token_file':
            value = os.path.expanduser(str(value))
        result[name] = value
    return result


def _robot_list(value: Any, text: str) -> list:
    if isinstance(value, (str, int)):  # one id without brackets
        return [str(value)]
    if isinstance(value, list) and value and all(isinstance(v, (str, int)) for v in value):
        return [str(v) for v in value]
    raise LaunchArgumentError("launch argument 'robots' must be a robot id or a list of "
                              f'them, like "[rbt_0001, rbt_0002]"; got {text!r}')


def check_params_file(path: str) -> str:
    """Return ``path`` if it is a readable file, else raise naming it."""
    if not os.path.isfile(path):
        raise LaunchArgumentError(f"launch argument 'params_file': no such file: {path}")
    return path


__all__ = ['LOG_LEVELS', 'LaunchArgumentError', 'OVERRIDABLE', 'check_params_file',
           'overrides']

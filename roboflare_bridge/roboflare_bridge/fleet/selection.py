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
Which of the org's robots a bridge mirrors, and under which ROS names (pure).

``robots`` entries are ids, names or globs over either; ``deny_robots`` entries exclude the
same way. With shards, a robot belongs to exactly one shard, chosen by a stable hash of its
id: shards agree without talking to each other, wherever they run.

Two robots of the org whose names make the same ROS name are told apart deterministically
(over the whole org, so every selection and every shard agrees): the one with the smallest
id keeps the name, each other one gets its id appended, and a warning says so.
"""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
from typing import Dict, Iterable, List, Protocol, Sequence, Tuple, TypeVar

from ..common.globs import glob_match
from ..parameters import ros_name

GLOB_CHARACTERS = frozenset('*?[')


class OrgRobot(Protocol):
    """A robot as the org's listing gives it (resources.Robot)."""

    @property
    def id(self) -> str: ...  # noqa: A003, D102, E704 - the contract's field name

    @property
    def name(self) -> str: ...  # noqa: D102, E704


R = TypeVar('R', bound=OrgRobot)


def shard_of(robot_id: str, shard_count: int) -> int:
    """Return the shard of a robot: the same on every machine, for every Python."""
    digest = hashlib.blake2b(robot_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, 'big') % shard_count


def matches(entry: str, robot: OrgRobot) -> bool:
    """Return whether a ``robots`` entry (id, name or glob over either) names a robot."""
    return glob_match(robot.id, entry) or glob_match(robot.name, entry)


@dataclass(frozen=True)
class Selection:
    """The ``robots``, ``deny_robots`` and shard parameters, applied to a listing."""

    allow: Tuple[str, ...]
    deny: Tuple[str, ...] = ()
    shard_count: int = 1
    shard_index: int = 0

    def selects(self, robot: OrgRobot) -> bool:
        return (any(matches(entry, robot) for entry in self.allow)
                and not any(matches(entry, robot) for entry in self.deny)
                and shard_of(robot.id, self.shard_count) == self.shard_index)

    def choose(self, listing: Iterable[R]) -> List[R]:
        """Return the robots this bridge mirrors, by id."""
        return sorted((robot for robot in listing if self.selects(robot)),
                      key=lambda robot: robot.id)

    def unmatched(self, listing: Sequence[OrgRobot]) -> List[str]:
        """Return the entries without globs that name no robot of the org (typos, or not yet)."""
        return [entry for entry in self.allow if not GLOB_CHARACTERS & set(entry)
                and not any(matches(entry, robot) for robot in listing)]


def ros_names(robots: Sequence[OrgRobot]) -> Tuple[Dict[str, str], Dict[str, str]]:
    """Return each robot's ROS name, and a warning for each robot renamed, by id."""
    groups: Dict[str, List[OrgRobot]] = {}
    for robot in sorted(robots, key=lambda r: r.id):
        groups.setdefault(ros_name(robot.name or robot.id), []).append(robot)
    names: Dict[str, str] = {}
    taken = set(groups)
    warnings: Dict[str, str] = {}
    for base, members in groups.items():
        names[members[0].id] = base
        for robot in members[1:]:
            name = f'{base}_{ros_name(robot.id)}'
            while name in taken:
                name += '_'
            taken.add(name)
            names[robot.id] = name
            warnings[robot.id] = (f'robots {members[0].id} and {robot.id} are both named '
                                  f'{base!r} in ROS: {robot.id} is mirrored as {name!r}')
    return names, warnings


__all__ = ['OrgRobot', 'Selection', 'matches', 'ros_names', 'shard_of']

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
"""Robot selection, shards and ROS names (pure: no ROS graph, no API)."""

import random

from roboflare_bridge.control.resources import Robot
from roboflare_bridge.fleet.selection import ros_names, Selection, shard_of


def robot(robot_id, name, status='online'):
    return Robot(robot_id, name, status, (0, 0))


ORG = [robot('rbt_0001', 'warehouse-1'), robot('rbt_0002', 'warehouse-2'),
       robot('rbt_0003', 'dock-1'), robot('rbt_0042', 'Dock 2')]


def ids(robots):
    return [r.id for r in robots]


def test_entries_are_ids_names_or_globs_and_deny_comes_after():
    assert ids(Selection(('*',)).choose(ORG)) == ['rbt_0001', 'rbt_0002', 'rbt_0003',
                                                  'rbt_0042']
    assert ids(Selection(('warehouse-*', 'rbt_0003')).choose(ORG)) == [
        'rbt_0001', 'rbt_0002', 'rbt_0003']
    assert ids(Selection(('rbt_00??',), deny=('warehouse-2', 'Dock*')).choose(ORG)) == [
        'rbt_0001', 'rbt_0003']
    assert Selection(('rbt_0001', 'rbt_9999', 'ghost-*')).unmatched(ORG) == ['rbt_9999']


def test_shards_split_the_robots_exactly_once_and_agree_everywhere():
    org = [robot(f'rbt_{i:04d}', f'robot-{i}') for i in range(200)]
    for count in (1, 2, 3, 7):
        shares = [set(ids(Selection(('*',), shard_count=count, shard_index=i).choose(org)))
                  for i in range(count)]
        assert set().union(*shares) == set(ids(org))
        assert sum(map(len, shares)) == len(org)  # disjoint
        if count > 1:
            assert min(map(len, shares)) > len(org) / count / 2  # roughly even
    # A hash of the id alone (blake2b, not Python's per-process hash): bridges on other
    # machines, and later versions, must put each robot in the same shard.
    assert [shard_of(f'rbt_{i:04d}', 4) for i in range(8, 24)] == \
        [2, 3, 1, 1, 2, 3, 2, 0, 1, 1, 0, 3, 2, 1, 3, 3]


def test_colliding_names_are_told_apart_the_same_way_in_any_order():
    org = ORG + [robot('rbt_0007', 'Warehouse 1'), robot('rbt_0005', 'warehouse_1')]
    names, renamed = ros_names(org)
    assert names['rbt_0001'] == 'warehouse_1'  # the smallest id keeps the name
    assert names['rbt_0005'] == 'warehouse_1_rbt_0005'
    assert names['rbt_0007'] == 'warehouse_1_rbt_0007'
    assert names['rbt_0042'] == 'dock_2'
    assert set(renamed) == {'rbt_0005', 'rbt_0007'}
    assert "rbt_0005 is mirrored as 'warehouse_1_rbt_0005'" in renamed['rbt_0005']
    shuffled = list(org)
    random.Random(3).shuffle(shuffled)
    assert ros_names(shuffled) == (names, renamed)

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
The emulated organisation: robots, releases, configs, deployments and stored logs.

No transport here: the server turns HTTP requests into calls on :class:`World` and
:class:`WorldError` into the API's error envelope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import random
import re
import time
from typing import Any, Dict, List, Set, Tuple

from .contract import (
    CONFIG_DEPLOYMENT, DEPLOYMENT_STATUSES, DeploymentKind, format_time, MAX_BATCH_RECORDS,
    RecordError, RELEASE_DEPLOYMENT, TERMINAL_STATUSES, validate_log_record,
)
from .sim import SimRobot

MAX_CLOCK_OFFSET_S = 1e8  # about three years either way

_STATUS_WORD = re.compile(r'[a-z][a-z_]{0,31}')


class WorldError(Exception):
    """An API error: HTTP status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class DeploymentRecord:
    """A deployment as the emulator tracks it; ``plan`` says which robots will fail."""

    kind: DeploymentKind
    id: str  # noqa: A003 - the contract's field name
    subject_id: str
    robot_ids: List[str]
    created: float
    failing: Set[str]
    status: str = 'pending'
    message: str = ''
    robot_progress: Dict[str, float] = field(default_factory=dict)
    robot_status: Dict[str, str] = field(default_factory=dict)
    robot_message: Dict[str, str] = field(default_factory=dict)
    updated: float = 0.0

    def to_json(self) -> Dict[str, Any]:
        progress = (sum(self.robot_progress.values()) / len(self.robot_progress)
                    if self.robot_progress else 0.0)
        return {
            'id': self.id, self.kind.subject_field: self.subject_id,
            'robot_ids': list(self.robot_ids), 'status': self.status,
            'progress': round(progress, 4), 'message': self.message,
            'robots': [{'robot_id': r, 'status': self.robot_status[r],
                        'message': self.robot_message.get(r, '')} for r in self.robot_ids],
            'created_at': format_time(self.created), 'updated_at': format_time(self.updated)}


@dataclass
class DeploymentTiming:
    """How deployments progress: seconds pending, seconds per robot, which robots fail."""

    pending_s: float = 0.5
    duration_s: float = 3.0
    fail_rate: float = 0.0
    fail_robot_ids: Set[str] = field(default_factory=set)


class World:
    """The state behind the emulated API."""

    def __init__(self, robots: int = 2, seed: int = 0, org_id: str = 'org_emulated',
                 map_cells: int = 0) -> None:
        self.org_id = org_id
        self.rng = random.Random(seed)
        self.timing = DeploymentTiming()
        self.started = time.time()
        self.map_cells = map_cells
        self.robots: List[SimRobot] = []
        self.robots_by_id: Dict[str, SimRobot] = {}
        self.offline_since: Dict[str, float] = {}  # robot id -> when it went offline
        self.custom_status: Dict[str, str] = {}  # robot id -> a status neither online nor off
        for _ in range(robots):
            self.add_robot()
        now = self.started
        self.releases = [
            {'id': 'rel_navstack_140', 'name': 'navstack', 'version': '1.4.0',
             'created_at': format_time(now - 86400 * 3)},
            {'id': 'rel_navstack_141', 'name': 'navstack', 'version': '1.4.1',
             'created_at': format_time(now - 3600)},
        ]
        self.configs = [
            {'id': 'cfg_nav2_params', 'name': 'nav2_params', 'version': '7',
             'content': 'controller_server:\n  ros__parameters:\n    controller_frequency: 20.0\n',
             'content_type': 'application/yaml', 'created_at': format_time(now - 7200)},
            {'id': 'cfg_fleet_env', 'name': 'fleet_env', 'version': '2',
             'content': 'ROS_DOMAIN_ID=7\n', 'content_type': 'text/plain',
             'created_at': format_time(now - 600)},
        ]
        self.deployments: Dict[str, DeploymentRecord] = {}
        self._next_id = 1
        # (route, Idempotency-Key) -> (status, body): a replay returns the original.
        self.idempotent_responses: Dict[Tuple[str, str], Tuple[int, Dict[str, Any]]] = {}
        # Upstream logs: per robot, stored records in arrival order and the stored batch ids.
        self.uploaded_logs: Dict[str, List[Dict[str, Any]]] = {}
        self.uploaded_batch_ids: Dict[str, Set[str]] = {}
        # Per robot and stored batch: [wall time it arrived, records stored up to it].
        self.uploaded_arrivals: Dict[str, List[Tuple[float, int]]] = {}
        self.duplicate_batches = 0

    # -- reads ----------------------------------------------------------------------------

    def robot_json(self, robot: SimRobot) -> Dict[str, Any]:
        offline_since = self.offline_since.get(robot.id)
        status = 'online' if offline_since is None else 'offline'
        return {'id': robot.id, 'name': robot.name,
                'status': self.custom_status.get(robot.id, status),
                'last_seen_at': format_time(offline_since or time.time())}

    # -- the fleet changing (emulator control) --------------------------------------------

    def add_robot(self, name: str = '') -> SimRobot:
        """Add a robot to the org: the next free id, and a name (default robot-<n>)."""
        index = max((robot.index for robot in self.robots), default=-1) + 1
        robot = SimRobot(index, f'rbt_{index + 1:04d}', name or f'robot-{index + 1}',
                         self.map_cells)
        self.robots.append(robot)
        self.robots_by_id[robot.id] = robot
        return robot

    def remove_robot(self, robot_id: str) -> None:
        robot = self.robot(robot_id)
        self.robots.remove(robot)
        del self.robots_by_id[robot_id]
        self.offline_since.pop(robot_id, None)
        self.custom_status.pop(robot_id, None)

    def update_robot(self, robot_id: str, name: str = '', status: str = '',
                     clock_offset_s: Any = None) -> SimRobot:
        """
        Rename a robot, take it offline or back online, give it another status, step its clock.

        A status other than online and offline (``maintenance``: control planes grow new
        ones) is reported as it is while the robot keeps streaming. ``clock_offset_s`` sets
        how far the robot's clock is ahead of the real time (negative: behind), at once:
        a step, as NTP makes when it reaches a robot.
        """
        robot = self.robot(robot_id)
        if status and not _STATUS_WORD.fullmatch(status):
            raise WorldError(400, 'bad_request', f'status {status[:20]!r} is not a word')
        if clock_offset_s is not None:
            if (not isinstance(clock_offset_s, (int, float)) or isinstance(clock_offset_s, bool)
                    or not abs(clock_offset_s) <= MAX_CLOCK_OFFSET_S):
                raise WorldError(400, 'bad_request', 'clock_offset_s must be a number of '
                                 f'seconds within +-{MAX_CLOCK_OFFSET_S:g}')
            robot.clock_offset_s = float(clock_offset_s)
        if name:
            robot.name = name
        if status:
            self.custom_status.pop(robot_id, None)
        if status == 'offline':
            self.offline_since.setdefault(robot_id, time.time())
        elif status == 'online':
            self.offline_since.pop(robot_id, None)
        elif status:
            self.custom_status[robot_id] = status
        return robot

    def robot(self, robot_id: str) -> SimRobot:
        robot = self.robots_by_id.get(robot_id)
        if robot is None:
            raise WorldError(404, 'not_found', 'robot not found')
        return robot

    def find(self, items: List[Dict[str, Any]], item_id: str, what: str) -> Dict[str, Any]:
        for item in items:
            if item['id'] == item_id:
                return item
        raise WorldError(404, 'not_found', f'{what} not found')

    def list_deployments(self, kind: DeploymentKind, robot_id: str = '',
                         status: str = '') -> List[Dict[str, Any]]:
        if status and status not in DEPLOYMENT_STATUSES:
            raise WorldError(400, 'bad_request', f'unknown status {status[:40]!r}')
        return [d.to_json() for d in self.deployments.values()
                if d.kind is kind and (not robot_id or robot_id in d.robot_ids)
                and (not status or d.status == status)]

    def deployment(self, kind: DeploymentKind, deployment_id: str) -> DeploymentRecord:
        record = self.deployments.get(deployment_id)
        if record is None or record.kind is not kind:
            raise WorldError(404, 'not_found', f'{kind.name} not found')
        return record

    # -- writes ---------------------------------------------------------------------------

    def create_deployment(self, kind: DeploymentKind, body: Any) -> DeploymentRecord:
        if not isinstance(body, dict):
            raise WorldError(400, 'bad_request', 'body must be a JSON object')
        subject_id, robot_ids = body.get(kind.subject_field), body.get('robot_ids')
        if not isinstance(subject_id, str) or not subject_id:
            raise WorldError(400, 'bad_request', f'{kind.subject_field} is required')
        if (not isinstance(robot_ids, list) or not robot_ids
                or not all(isinstance(r, str) for r in robot_ids)):
            raise WorldError(400, 'bad_request', 'robot_ids must be a non-empty list of ids')
        subjects = self.releases if kind is RELEASE_DEPLOYMENT else self.configs
        self.find(subjects, subject_id, 'release' if kind is RELEASE_DEPLOYMENT else 'config')
        for robot_id in robot_ids:
            self.robot(robot_id)
        robot_ids = list(dict.fromkeys(robot_ids))
        failing = {r for r in robot_ids
                   if r in self.timing.fail_robot_ids or self.rng.random() < self.timing.fail_rate}
        prefix = 'dep' if kind is RELEASE_DEPLOYMENT else 'cdep'
        now = time.time()
        record = DeploymentRecord(
            kind=kind, id=f'{prefix}_{self._next_id:06d}', subject_id=subject_id,
            robot_ids=robot_ids, created=now, updated=now, failing=failing,
            robot_progress=dict.fromkeys(robot_ids, 0.0),
            robot_status=dict.fromkeys(robot_ids, 'pending'))
        self._next_id += 1
        self.deployments[record.id] = record
        return record

    def cancel_deployment(self, kind: DeploymentKind, deployment_id: str) -> DeploymentRecord:
        record = self.deployment(kind, deployment_id)
        if record.status in TERMINAL_STATUSES:
            raise WorldError(409, 'conflict', f'{kind.name} is already {record.status}')
        record.status, record.message = 'cancelled', 'cancelled by request'
        for robot_id, status in record.robot_status.items():
            if status not in TERMINAL_STATUSES:
                record.robot_status[robot_id] = 'cancelled'
        record.updated = time.time()
        return record

    def advance(self, now: float, dt: float) -> None:
        """Move every running deployment forward by ``dt`` seconds."""
        timing = self.timing
        for record in self.deployments.values():
            if record.status in TERMINAL_STATUSES or now - record.created < timing.pending_s:
                continue
            record.status = 'in_progress'
            step = dt / max(timing.duration_s, 1e-3)
            for robot_id in record.robot_ids:
                if record.robot_status[robot_id] in TERMINAL_STATUSES:
                    continue
                record.robot_status[robot_id] = 'in_progress'
                progress = min(1.0, record.robot_progress[robot_id] + step)
                if robot_id in record.failing and progress >= 0.5:
                    record.robot_status[robot_id] = 'failed'
                    record.robot_message[robot_id] = 'install step failed: exit code 2'
                elif progress >= 1.0:
                    record.robot_status[robot_id] = 'succeeded'
                record.robot_progress[robot_id] = progress
            states = set(record.robot_status.values())
            if states <= TERMINAL_STATUSES:
                failed = [r for r in record.robot_ids if record.robot_status[r] == 'failed']
                record.status = 'failed' if failed else 'succeeded'
                if failed:
                    record.message = f'failed on {len(failed)} of {len(record.robot_ids)} robots'
            record.updated = now

    # -- upstream logs --------------------------------------------------------------------

    def store_batch(self, robot_id: str, batch: Any) -> str:
        """Validate and store a batch once; return its id. Raise WorldError if malformed."""
        if not isinstance(batch, dict) or batch.get('type') != 'batch':
            raise WorldError(400, 'bad_request', 'expected a batch frame')
        batch_id, records = batch.get('id'), batch.get('records')
        if not isinstance(batch_id, str) or not batch_id:
            raise WorldError(400, 'bad_request', 'batch id must be a non-empty string')
        if not isinstance(records, list) or len(records) > MAX_BATCH_RECORDS:
            raise WorldError(400, 'bad_request',
                             f'records must be a list of at most {MAX_BATCH_RECORDS}')
        try:
            parsed = [validate_log_record(r) for r in records]
        except RecordError as exc:
            raise WorldError(400, 'bad_request', str(exc)) from None
        seen = self.uploaded_batch_ids.setdefault(robot_id, set())
        if batch_id in seen:
            self.duplicate_batches += 1
            return batch_id
        seen.add(batch_id)
        stored = self.uploaded_logs.setdefault(robot_id, [])
        stored.extend(parsed)
        self.uploaded_arrivals.setdefault(robot_id, []).append((time.time(), len(stored)))
        return batch_id


__all__ = ['World', 'WorldError', 'DeploymentRecord', 'DeploymentTiming', 'CONFIG_DEPLOYMENT',
           'RELEASE_DEPLOYMENT']

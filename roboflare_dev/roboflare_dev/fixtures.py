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
Test-wide set-up for the bridge's and the emulator's tests, and their shared fixtures.

DDS stays on loopback, on a domain of its own. A conftest imports its fixtures from here.
"""

import logging
import os
import signal
import sys

# Before rclpy is imported anywhere: keep discovery on this machine (the README (DDS on loopback)).
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str(os.getpid() % 90 + 100))
# pytest-xdist's workers each get a domain of their own, XDIST_DOMAIN_STRIDE apart (once: a
# pytest a test starts inherits the worker's variables), so their graphs never meet.
XDIST_DOMAIN_STRIDE = 40
MAX_DOMAIN_ID = 232  # the highest Fast DDS maps to ports with its default settings
_worker = os.environ.get('PYTEST_XDIST_WORKER', '')
if _worker.startswith('gw') and not os.environ.get('ROBOFLARE_WORKER_DOMAIN'):
    _domain = int(os.environ['ROS_DOMAIN_ID']) + XDIST_DOMAIN_STRIDE * int(_worker[2:])
    if _domain > MAX_DOMAIN_ID:
        raise RuntimeError(f'ROS_DOMAIN_ID {_domain} for xdist worker {_worker} is past '
                           f'{MAX_DOMAIN_ID}: start from a lower ROS_DOMAIN_ID')
    os.environ['ROS_DOMAIN_ID'] = os.environ['ROBOFLARE_WORKER_DOMAIN'] = str(_domain)
# In a PyPI venv the ROS prefix is the venv itself (a sourced ROS install sets this).
os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)
# A shell without job control starts background commands with SIGINT ignored, and children
# inherit that: a bridge would lose a SIGINT sent before it installs its handler, and never
# stop. A handler (unlike SIG_IGN) is not inherited: children start with the default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import pytest  # noqa: E402

from .testing import EmulatorThread, RosHarness  # noqa: E402


@pytest.fixture
def emulator():
    """Start a fresh emulator with two robots on a free port, in its own event-loop thread."""
    emu = EmulatorThread(robots=2)
    yield emu
    emu.close()


@pytest.fixture(scope='session')
def ros():
    """Provide an rclpy node spun by its own executor thread, for clients and subscribers."""
    harness = RosHarness()
    yield harness
    harness.close()


@pytest.fixture(autouse=True)
def ros_still_spinning(request):
    """Fail a test that uses the shared node, and name it, if its executor has died."""
    if 'ros' not in request.fixturenames:
        yield
        return
    harness = request.getfixturevalue('ros')
    harness.check()
    yield
    harness.check()


@pytest.fixture(autouse=True)
def package_logs_reach_caplog():
    """
    Let the bridge's loggers propagate to the root, where caplog listens.

    On a ROS install the launch_pytest plugin imports launch before any test, and
    launch.logging makes every logger created afterwards stop propagating.
    """
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.startswith('roboflare_bridge') and isinstance(logger, logging.Logger):
            logger.propagate = True

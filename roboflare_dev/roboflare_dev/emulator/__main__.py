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
``emulator``: run the Roboflare emulator on its own.

Its first line on stdout is ``listening on http://H:P``; without ``--token`` the second line
is the generated ``rf_org_`` token. Outside tools rely on both.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import List, Optional, Tuple

from .contract import TOKEN_PATTERN
from .server import Emulator, EmulatorConfig


def _size(text: str) -> Tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected WxH, got {text!r}') from None
    if not (8 <= width <= 8192 and 8 <= height <= 8192):
        raise argparse.ArgumentTypeError('camera size must be between 8x8 and 8192x8192')
    return width, height


def _token(text: str) -> str:
    if not TOKEN_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError('a token looks like rf_org_<hex> or rf_user_<hex>')
    return text


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError('must be > 0')
    return value


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='emulator', description=__doc__.splitlines()[0])
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=8787, help='0 picks a free port')
    parser.add_argument('--token', action='append', type=_token, default=[],
                        help='accepted token (repeatable); default: one generated token')
    parser.add_argument('--robots', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--camera-fps', type=_positive, default=10.0)
    parser.add_argument('--camera-size', type=_size, default=(320, 240), metavar='WxH')
    parser.add_argument('--rate-scale', type=_positive, default=1.0,
                        help='multiply every simulated topic rate')
    parser.add_argument('--log-rate', type=float, default=2.0,
                        help='remote log records per second and robot')
    parser.add_argument('--map-cells', type=int, default=0,
                        help="side of each robot's latched map in cells; 0 = 5 cm cells")
    parser.add_argument('--deploy-duration', type=float, default=3.0,
                        help='seconds a deployment takes per robot')
    parser.add_argument('--fail-rate', type=float, default=0.0,
                        help='probability that a robot fails a deployment (seeded)')
    parser.add_argument('--log-level', default='WARNING')
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    emulator = Emulator(EmulatorConfig(
        host=args.host, port=args.port, tokens=list(args.token), robots=args.robots,
        seed=args.seed, camera_fps=args.camera_fps, camera_size=args.camera_size,
        rate_scale=args.rate_scale, log_rate_hz=args.log_rate, map_cells=args.map_cells))
    emulator.world.timing.duration_s = args.deploy_duration
    emulator.world.timing.fail_rate = args.fail_rate
    await emulator.start()
    print(f'listening on {emulator.url}', flush=True)
    if not args.token:
        print(emulator.token, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await emulator.stop()


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format='emulator %(levelname)s %(name)s: %(message)s')
    try:
        asyncio.run(_serve(args))
    except OSError as exc:
        print(f'emulator: {exc}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/env bash
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
#
# Memory soak: the bridge mirroring 10 emulated robots (topics, cameras at 10 fps, remote logs)
# for 5 minutes after a 30 s warm-up; prints the bridge's RSS each minute and the growth.
#   DISTRO=jazzy bench/soak.sh [minutes]
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-5}
BIN=.venv/${DISTRO:-jazzy}/bin
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-97}
work=$(mktemp -d)
$BIN/emulator --port 0 --robots 10 --camera-fps 10 > "$work/emulator.out" 2>/dev/null &
emulator=$!
trap 'kill $emulator 2>/dev/null || true' EXIT
until [ -s "$work/emulator.out" ] && [ "$(wc -l < "$work/emulator.out")" -ge 2 ]; do sleep 0.2; done
url=$(head -1 "$work/emulator.out" | cut -d' ' -f3)
sed -n 2p "$work/emulator.out" > "$work/token" && chmod 600 "$work/token"
robots=$(python3 -c "print('[' + ','.join(f'rbt_{i:04d}' for i in range(1, 11)) + ']')")
$BIN/bridge --ros-args -p base_url:="$url" -p token_file:="$work/token" -p "robots:=$robots" \
    > "$work/bridge.log" 2>&1 &
bridge=$!
rss() { awk '/VmRSS/ {print $2}' /proc/$bridge/status; }
sleep 30  # warm-up: connections, publishers, first frames
start=$(rss)
echo "start: $start kB"
for minute in $(seq 1 "$MINUTES"); do sleep 60; echo "minute $minute: $(rss) kB"; done
end=$(rss)
echo "end: $end kB, peak $(awk '/VmHWM/ {print $2}' /proc/$bridge/status) kB, growth" \
     "$(python3 -c "print(f'{($end - $start) / $start * 100:.1f} %')")"
kill -INT $bridge
wait $bridge || true

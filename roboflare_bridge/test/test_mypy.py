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
"""The runtime package's static types: mypy, clean, with the repository's mypy.ini."""

from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1]
CONFIG = PACKAGE.parent / 'mypy.ini'


@pytest.mark.linter
@pytest.mark.mypy
def test_mypy():
    api = pytest.importorskip('mypy.api', reason='mypy is not installed (python3-mypy)')
    options = ['--config-file', str(CONFIG)] if CONFIG.exists() else [
        '--ignore-missing-imports', '--check-untyped-defs']
    out, err, status = api.run(options + ['--no-incremental', str(PACKAGE / 'roboflare_bridge')])
    assert status == 0, out + err

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

from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1]
APACHE_NOTICE = 'Licensed under the Apache License, Version 2.0'


@pytest.mark.copyright
@pytest.mark.linter
def test_copyright():
    try:
        from ament_copyright.main import main
    except ImportError:  # not on PyPI: the same check, in short, where ament is absent
        missing = [str(p.relative_to(PACKAGE)) for p in sorted(PACKAGE.rglob('*.py'))
                   if _is_source(p) and not _has_notice(p)]
        assert not missing, f'files without a copyright and license notice: {missing}'
        return
    rc = main(argv=['.', 'test'])
    assert rc == 0, 'Found errors'


def _is_source(path: Path) -> bool:
    return not any(part.startswith('.') or part in ('build', '__pycache__')
                   for part in path.relative_to(PACKAGE).parts)


def _has_notice(path: Path) -> bool:
    head = path.read_text(encoding='utf-8')[:1000]
    return head.startswith('# Copyright ') and APACHE_NOTICE in head

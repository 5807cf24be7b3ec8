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
import xml.etree.ElementTree as ElementTree

import pytest

PACKAGE = Path(__file__).resolve().parents[1]
REQUIRED = ('name', 'version', 'description', 'maintainer', 'license')


@pytest.mark.linter
@pytest.mark.xmllint
def test_xmllint():
    try:
        from ament_xmllint.main import main
    except ImportError:  # not on PyPI: well-formedness and format-3 essentials instead
        for path in (PACKAGE / 'package.xml', PACKAGE.parent / 'roboflare_interfaces/package.xml'):
            root = ElementTree.parse(path).getroot()
            assert root.tag == 'package' and root.get('format') == '3', path
            for tag in REQUIRED:
                assert root.find(tag) is not None and root.find(tag).text, f'{path}: {tag}'
            assert root.find('export/build_type') is not None, path
        return
    rc = main(argv=[])
    assert rc == 0, 'Found errors'

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
``ros2 run roboflare_bridge check_api``: whether the API is what the bridge expects.

Prints the report the bridge logs at start (contract_check.py) and exits 0 when the bridge is
compatible with the live ``/openapi.json``, 1 otherwise (differences it cannot absorb, or a
spec that cannot be fetched). The spec is public; a token, when one is configured, is sent
only if the server asks for it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import List, Optional

import httpx

from ..control.api_client import fetch_openapi
from ..control.contract_check import check_document, Report
from ..control.resources import ApiError, OPENAPI_PATH
from ..transport.credentials import (
    check_base_url, CredentialsError, DEFAULT_BASE_URL, resolve_base_url, resolve_credentials,
    Token,
)


async def check(base_url: str, token: Optional[Token], timeout_s: float = 10.0) -> Report:
    """Return the report for the API at ``base_url``."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        try:
            document = await fetch_openapi(http, token, timeout_s)
        except ApiError as exc:
            return Report(error=f'cannot fetch {OPENAPI_PATH}: {exc}')
    return check_document(document)


def main(argv: Optional[List[str]] = None) -> int:
    """Check the live /openapi.json against what the bridge uses; exit 0 when compatible."""
    parser = argparse.ArgumentParser(prog='check_api', description=main.__doc__)
    parser.add_argument('--base-url', default='', help='Roboflare API base URL (default: as '
                        f'the bridge resolves it, else {DEFAULT_BASE_URL})')
    parser.add_argument('--token-file', default='', help='file holding the API token, sent '
                        'only if the spec is refused without one')
    parser.add_argument('--timeout', type=float, default=10.0, help='seconds per request')
    args = parser.parse_args(argv)
    token: Optional[Token] = None
    try:
        credentials = resolve_credentials(args.base_url, args.token_file)
        base_url, token = credentials.base_url, credentials.token
        check_base_url(base_url)
    except CredentialsError as exc:
        if args.token_file:  # a token the user named and we cannot use: say so
            parser.error(str(exc))
        base_url, token = resolve_base_url(args.base_url), None  # the spec is public
    report = asyncio.run(check(base_url, token, args.timeout))
    print(f'{base_url.rstrip("/")}{OPENAPI_PATH}')
    for line in report.lines():
        print('  ' + line)
    return 0 if report.compatible else 1


if __name__ == '__main__':
    sys.exit(main())

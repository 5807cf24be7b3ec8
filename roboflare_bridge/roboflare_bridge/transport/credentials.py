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
Where the base URL and the token come from, and keeping the token secret.

Order (docs/contract.md section 1): ROS parameter > environment > the Roboflare CLI's
``~/.config/roboflare/credentials.toml`` > default.
"""

from __future__ import annotations

from dataclasses import dataclass
import ipaddress
import logging
import os
from pathlib import Path
import re
import stat
from typing import Callable, Mapping, Optional
from urllib.parse import urlsplit

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

DEFAULT_BASE_URL = 'https://api.roboflare.com'
CREDENTIALS_PATH = Path('~/.config/roboflare/credentials.toml')
TOKEN_PATTERN = re.compile(r'rf_(org|user)_[0-9a-f]+')

_log = logging.getLogger(__name__)


class CredentialsError(ValueError):
    """Credentials are missing or malformed; the message never contains the token."""


class Token:
    """A bearer token that never shows itself in ``str()``, ``repr()`` or f-strings."""

    __slots__ = ('_value', '__weakref__')  # weakly held by the streams' log filter

    def __init__(self, value: str) -> None:
        value = value.strip()
        if not TOKEN_PATTERN.fullmatch(value):
            raise CredentialsError(
                'token has the wrong shape: expected rf_org_<hex> or rf_user_<hex> '
                f'({len(value)} characters given, not shown)')
        self._value = value

    def reveal(self) -> str:
        """Return the secret itself, for the Authorization header and the ?token= query."""
        return self._value

    @property
    def kind(self) -> str:
        """Return 'org' or 'user'."""
        return self._value.split('_')[1]

    def scrub(self, text: str) -> str:
        """Return ``text`` with every occurrence of the token replaced."""
        return text.replace(self._value, '<token>') if text else text

    def __repr__(self) -> str:
        return f'Token(rf_{self.kind}_…)'

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Token) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Credentials:
    """A base URL and the token to use against it."""

    base_url: str
    token: Token


def _read_credentials_file(path: Path) -> Mapping[str, object]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CredentialsError(f'cannot read {path}: {exc.strerror}') from None
    _warn_if_readable_by_others(path)
    try:
        return tomllib.loads(raw.decode('utf-8'))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        # Never quote the file's content: it holds the token.
        raise CredentialsError(f'{path} is not valid TOML ({type(exc).__name__})') from None


def _warn_if_readable_by_others(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        _log.warning('%s holds a token and is readable by other users; run: chmod 600 %s',
                     path, path)


def _read_token_file(path: Path) -> str:
    try:
        text = path.read_text(encoding='utf-8')
    except OSError as exc:
        raise CredentialsError(f'cannot read token_file {path}: {exc.strerror}') from None
    except UnicodeDecodeError:
        raise CredentialsError(f'token_file {path} is not UTF-8 text') from None
    _warn_if_readable_by_others(path)
    return text


def resolve_base_url(base_url_param: str = '', env: Optional[Mapping[str, str]] = None,
                     credentials_path: Optional[Path] = None) -> str:
    """Resolve the base URL alone, in the contract's order (no token needed)."""
    path = (credentials_path or CREDENTIALS_PATH).expanduser()

    def from_file(key: str) -> str:
        value = _read_credentials_file(path).get(key, '')
        return value if isinstance(value, str) else ''
    return _base_url(base_url_param, os.environ if env is None else env, from_file)


def _base_url(base_url_param: str, env: Mapping[str, str],
              from_file: Callable[[str], str]) -> str:
    return (base_url_param or env.get('ROBOFLARE_BASE_URL', '') or from_file('base_url')
            or DEFAULT_BASE_URL).rstrip('/')


def resolve_credentials(base_url_param: str = '', token_file_param: str = '',
                        env: Optional[Mapping[str, str]] = None,
                        credentials_path: Optional[Path] = None) -> Credentials:
    """Resolve the base URL and token in the contract's order; raise CredentialsError."""
    env = os.environ if env is None else env
    path = (credentials_path or CREDENTIALS_PATH).expanduser()
    file_values: Optional[Mapping[str, object]] = None

    def from_file(key: str) -> str:
        nonlocal file_values
        if file_values is None:
            file_values = _read_credentials_file(path)
        value = file_values.get(key, '')
        return value if isinstance(value, str) else ''

    base_url = _base_url(base_url_param, env, from_file)
    if token_file_param:
        raw, source = _read_token_file(Path(token_file_param).expanduser()), 'token_file'
    elif env.get('ROBOFLARE_TOKEN'):
        raw, source = env['ROBOFLARE_TOKEN'], 'ROBOFLARE_TOKEN'
    else:
        raw, source = from_file('token'), str(path)
    if not raw.strip():
        raise CredentialsError(
            'no Roboflare token: set the token_file parameter, ROBOFLARE_TOKEN, '
            f'or token in {path}')
    try:
        token = Token(raw)
    except CredentialsError as exc:
        raise CredentialsError(f'{source}: {exc}') from None
    return Credentials(base_url=base_url.rstrip('/'), token=token)


def check_base_url(base_url: str, allow_insecure_http: bool = False) -> None:
    """Refuse a URL that would send the token in clear text to another machine."""
    parts = urlsplit(base_url)
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        raise CredentialsError(f'base_url must be an http(s) URL, got {base_url!r}')
    if parts.scheme == 'http' and not allow_insecure_http and not _is_loopback(parts.hostname):
        raise CredentialsError(
            f'base_url {base_url!r} is plain http to a non-loopback host: the token would '
            'travel unencrypted; use https (or set allow_insecure_http: true)')


def _is_loopback(host: str) -> bool:
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

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
"""Credentials: resolution order, token shape, secrecy, transport checks."""

import logging
import os

import pytest
from roboflare_bridge.transport.credentials import (
    check_base_url, CredentialsError, DEFAULT_BASE_URL, resolve_credentials, Token,
)

TOKEN = 'rf_org_' + 'ab12' * 8
OTHER = 'rf_user_' + 'cd34' * 8


def write(path, text, mode=0o600):
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_parameter_beats_environment_beats_file(tmp_path):
    creds_file = write(tmp_path / 'credentials.toml',
                       f'base_url = "https://file.example"\ntoken = "{OTHER}"\n')
    token_file = write(tmp_path / 'token', TOKEN + '\n')
    env = {'ROBOFLARE_TOKEN': OTHER, 'ROBOFLARE_BASE_URL': 'https://env.example'}

    got = resolve_credentials('https://param.example/', str(token_file), env, creds_file)
    assert (got.base_url, got.token.reveal()) == ('https://param.example', TOKEN)

    got = resolve_credentials('', '', env, creds_file)
    assert (got.base_url, got.token.reveal()) == ('https://env.example', OTHER)

    got = resolve_credentials('', '', {}, creds_file)
    assert (got.base_url, got.token.reveal()) == ('https://file.example', OTHER)


def test_default_base_url_and_missing_token(tmp_path):
    got = resolve_credentials('', '', {'ROBOFLARE_TOKEN': TOKEN}, tmp_path / 'absent.toml')
    assert got.base_url == DEFAULT_BASE_URL
    with pytest.raises(CredentialsError, match='no Roboflare token'):
        resolve_credentials('', '', {}, tmp_path / 'absent.toml')


@pytest.mark.parametrize('bad', ['rf_admin_abcd', 'rf_org_XYZ', 'Bearer rf_org_ab',
                                 'rf_org_zz', 'ghp_' + 'a' * 36, 'rf_org_ab cd'])
def test_wrong_shape_is_refused_without_printing_it(bad):
    with pytest.raises(CredentialsError) as info:
        resolve_credentials('', '', {'ROBOFLARE_TOKEN': bad}, None)
    assert bad not in str(info.value) and 'wrong shape' in str(info.value)


def test_token_never_shows_itself():
    token = Token(TOKEN)
    for text in (repr(token), str(token), f'{token}', '%s' % token, repr([token])):
        assert TOKEN not in text
    assert token.scrub(f'GET /x?token={TOKEN} failed') == 'GET /x?token=<token> failed'


def test_malformed_credentials_file_does_not_leak_its_content(tmp_path):
    path = write(tmp_path / 'credentials.toml', f'token = "{TOKEN}\n')  # unterminated string
    with pytest.raises(CredentialsError) as info:
        resolve_credentials('', '', {}, path)
    assert TOKEN not in str(info.value) and 'not valid TOML' in str(info.value)


def test_file_readable_by_others_draws_a_warning(tmp_path, caplog):
    path = write(tmp_path / 'token', TOKEN, mode=0o644)
    with caplog.at_level(logging.WARNING):
        resolve_credentials('', str(path), {}, None)
    assert 'readable by other users' in caplog.text and TOKEN not in caplog.text


@pytest.mark.parametrize('url,ok', [
    ('https://api.roboflare.com', True), ('http://127.0.0.1:8787', True),
    ('http://localhost:1', True), ('http://[::1]:80', True),
    ('http://api.roboflare.com', False), ('http://10.0.0.5', False), ('ftp://x', False),
    ('not a url', False)])
def test_plain_http_only_to_loopback(url, ok):
    if ok:
        check_base_url(url)
    else:
        with pytest.raises(CredentialsError):
            check_base_url(url)


def test_plain_http_allowed_explicitly():
    check_base_url('http://robots.lan:8080', allow_insecure_http=True)

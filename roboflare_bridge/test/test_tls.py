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
"""TLS: certificates are verified by default, for HTTP and for the streams."""

import asyncio
import shutil
import ssl
import subprocess

from aiohttp import web
import pytest
from roboflare_bridge.control.api_client import ApiClient
from roboflare_bridge.control.resources import ApiError
from roboflare_bridge.transport.credentials import Credentials, Token
from roboflare_bridge.transport.streams import StreamClient

TOKEN = Token('rf_org_' + 'c' * 32)


@pytest.fixture
def self_signed(tmp_path):
    if shutil.which('openssl') is None:
        pytest.skip('openssl is needed to make a self-signed certificate')
    key, cert = tmp_path / 'key.pem', tmp_path / 'cert.pem'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
                    '-subj', '/CN=127.0.0.1', '-keyout', str(key), '-out', str(cert)],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def test_untrusted_certificate_is_refused_by_http_and_streams(self_signed):
    async def scenario():
        app = web.Application()
        app.router.add_get('/api/robots', lambda request: web.json_response({'items': []}))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, '127.0.0.1', 0, ssl_context=self_signed)
        await site.start()
        url = f'https://127.0.0.1:{runner.addresses[0][1]}'
        try:
            client = ApiClient(Credentials(url, TOKEN), request_timeout_s=2)
            with pytest.raises(ApiError) as info:
                await client.list_robots()
            await client.aclose()
            stream = StreamClient(url, 'r', 'logs/ws', TOKEN, on_frame=lambda frame: None)
            task = asyncio.ensure_future(stream.run())
            while stream.stats.errors == 0:
                await asyncio.sleep(0.02)
            await stream.stop()
            await asyncio.wait_for(task, 5)
            return info.value, stream
        finally:
            await runner.cleanup()
    error, stream = asyncio.run(scenario())
    assert error.code == 'unavailable' and 'CERTIFICATE_VERIFY_FAILED' in error.message.upper()
    assert stream.stats.connects == 0 and 'CERTIFICATE' in stream.stats.last_error.upper()

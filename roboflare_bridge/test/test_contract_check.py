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
"""The live /openapi.json against what the bridge uses: the declaration, the check, check_api."""

import asyncio
import copy
import re
import subprocess

import httpx
import pytest
from roboflare_bridge.control.api_client import ApiClient, fetch_openapi
from roboflare_bridge.control.contract_check import check_document, Difference
from roboflare_bridge.control.resources import (
    ApiError, Config, CONFIG_DEPLOYMENT, CONFIG_DEPLOYMENT_USE, CONFIG_USE, Deployment,
    DEPLOYMENT_USE, MalformedResource, Release, RELEASE_DEPLOYMENT, RELEASE_USE, Robot,
    ROBOT_STATE_USE, ROBOT_USE, RobotState, ROUTES_USED,
)
from roboflare_bridge.tools import check_api
from roboflare_bridge.transport.credentials import Credentials, Token
from roboflare_dev.emulator.openapi import openapi_document
from roboflare_dev.testing import EmulatorThread, executable

TOKEN = 'rf_org_' + 'ab' * 16
SPEC = openapi_document('http://emulator')
PARSERS = [
    (ROBOT_USE, Robot.from_json), (RELEASE_USE, Release.from_json),
    (CONFIG_USE, Config.from_json), (ROBOT_STATE_USE, RobotState.from_json),
    (DEPLOYMENT_USE, lambda obj: Deployment.from_json(obj, RELEASE_DEPLOYMENT)),
    (CONFIG_DEPLOYMENT_USE, lambda obj: Deployment.from_json(obj, CONFIG_DEPLOYMENT))]
SAMPLES = {'string': 'x', 'number': 0.5, 'array': [], 'object': {}, 'integer': 1}
WRONG = {'string': 5, 'number': 'x', 'array': 'x', 'object': 'x', 'integer': 'x'}


class Recording(dict):
    """A JSON object that records which fields a parser reads."""

    def __init__(self, *args, read=None):
        super().__init__(*args)
        self.read = set() if read is None else read

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def sample(use):
    return {f.name: ('2026-11-29T00:00:00Z' if f.name.endswith('_at') else SAMPLES[f.kind])
            for f in use.fields}


@pytest.mark.parametrize('use,parse', PARSERS, ids=[use.name for use, _ in PARSERS])
def test_each_parser_reads_exactly_the_declared_fields(use, parse):
    obj = Recording(sample(use))
    parse(obj)
    assert obj.read == {f.name for f in use.fields}


@pytest.mark.parametrize('use,parse', PARSERS, ids=[use.name for use, _ in PARSERS])
def test_declared_requirement_and_types_are_the_parsers(use, parse):
    for field in use.fields:
        without = {k: v for k, v in sample(use).items() if k != field.name}
        if field.required:
            with pytest.raises(MalformedResource):
                parse(without)
        else:
            parse(without)  # its default is used
        if not field.name.endswith('_at'):
            with pytest.raises(MalformedResource):
                parse(dict(sample(use), **{field.name: WRONG[field.kind]}))


def test_the_client_calls_exactly_the_declared_routes():
    seen = set()

    def answer(request):
        path = re.sub(r'/id_[^/]*', '/{id}', request.url.path)
        seen.add(f'{request.method} {path}')
        if request.method == 'GET' and not path.endswith('{id}'):
            return httpx.Response(200, json={'items': []})
        return httpx.Response(200, json={'data': {'id': 'x', 'status': 'pending'}})

    async def every_route():
        client = ApiClient(Credentials('http://api', Token(TOKEN)),
                           transport=httpx.MockTransport(answer))
        for kind in (RELEASE_DEPLOYMENT, CONFIG_DEPLOYMENT):
            await client.list_deployments(kind)
            await client.get_deployment('id_1', kind)
            await client.create_deployment('id_2', ['id_3'], kind)
            await client.cancel_deployment('id_1', kind)
        await client.list_robots()
        await client.get_robot('id_4')
        await client.list_releases()
        await client.get_release('id_5')
        await client.list_configs()
        await client.get_config('id_6')
        await client.aclose()
    asyncio.run(every_route())
    assert seen == {route.name for route in ROUTES_USED}


def test_the_emulators_spec_is_compatible_without_a_difference():
    report = check_document(SPEC)
    assert report.compatible and report.differences == [] and report.pagination == {}
    assert report.summary().startswith('compatible')


def altered(change):
    spec = copy.deepcopy(SPEC)
    change(spec)
    return check_document(spec)


def schemas(spec):
    return spec['components']['schemas']


def test_a_renamed_optional_field_is_absorbed_and_shown_on_every_route_reading_it():
    def rename(spec):
        robot = schemas(spec)['Robot']['properties']
        robot['display_name'] = robot.pop('name')
    report = altered(rename)
    assert report.compatible
    assert [d.line() for d in report.differences] == [
        'GET /api/robots: items[].name: expected string, found no such field (its default '
        'is used) (absorbed)',
        'GET /api/robots/{id}: data.name: expected string, found no such field (its default '
        'is used) (absorbed)']


def test_a_renamed_needed_field_is_incompatible():
    def rename(spec):
        deployment = schemas(spec)['Deployment']
        deployment['properties']['state'] = deployment['properties'].pop('status')
    report = altered(rename)
    assert not report.compatible
    assert Difference('POST /api/deployments', 'data.status', 'string (the bridge needs it)',
                      'no such field') in report.differences
    assert len(report.differences) == 4  # the four deployment routes, not the config ones


def test_a_removed_route_and_a_removed_method_are_named():
    def remove(spec):
        del spec['paths']['/api/configs/{id}']
        del spec['paths']['/api/deployments']['post']
    report = altered(remove)
    assert not report.compatible
    assert {d.line() for d in report.differences} == {
        'GET /api/configs/{id}: expected the route, found no such path',
        'POST /api/deployments: expected method POST, found only GET'}


def test_a_changed_list_envelope_is_incompatible():
    def bare_array(spec):
        get = spec['paths']['/api/releases']['get']
        get['responses']['200']['content']['application/json']['schema'] = {
            'type': 'array', 'items': {'$ref': '#/components/schemas/Release'}}
    report = altered(bare_array)
    assert [d.line() for d in report.differences] == [
        'GET /api/releases: expected a list envelope {"items": [...]}, found an array']


def test_an_unknown_status_value_is_absorbed_and_kept_as_text():
    def more_statuses(spec):
        schemas(spec)['Robot']['properties']['status']['enum'].append('maintenance')
    report = altered(more_statuses)
    assert report.compatible
    assert report.differences[0].line() == (
        'GET /api/robots: items[].status: expected one of offline, online, found also '
        'maintenance (kept as text) (absorbed)')


def test_declared_pagination_is_adopted_for_every_list_route():
    report = check_document(openapi_document('http://emulator', page_size=2))
    assert report.compatible
    lists = {route.path for route in ROUTES_USED if route.envelope == 'items'}
    assert set(report.pagination) == lists
    assert {p.cursor_field for p in report.pagination.values()} == {'next_cursor'}
    assert all(d.absorbed and d.field == 'next_cursor' for d in report.differences)


def test_pagination_without_a_cursor_parameter_is_incompatible():
    def no_cursor_parameter(spec):
        for path in ('/api/robots',):
            get = spec['paths'][path]['get']
            get['parameters'] = [p for p in get['parameters'] if p['name'] != 'cursor']
    spec = openapi_document('http://emulator', page_size=2)
    no_cursor_parameter(spec)
    report = check_document(spec)
    assert not report.compatible and '/api/robots' not in report.pagination
    assert report.differences[0].route == 'GET /api/robots'


def test_other_changes_and_documents_that_are_not_specs():
    def no_idempotency(spec):
        post = spec['paths']['/api/configs/deployments']['post']
        post['parameters'] = []

    def progress_as_text(spec):
        schemas(spec)['Deployment']['properties']['progress'] = {'type': 'string'}
    assert [d.line() for d in altered(no_idempotency).differences] == [
        'POST /api/configs/deployments: Idempotency-Key: expected a declared request header, '
        'found not declared']
    assert {d.field for d in altered(progress_as_text).differences} == {'items[].progress',
                                                                        'data.progress'}
    for document in ([], {'openapi': '3.1.0'}, 'html'):
        report = check_document(document)
        assert not report.compatible and report.error


def test_all_of_and_references_are_followed():
    def composed(spec):
        robot = schemas(spec).pop('Robot')
        schemas(spec)['RobotBase'] = {'type': 'object', 'required': ['id'],
                                      'properties': {'id': robot['properties']['id']}}
        schemas(spec)['Robot'] = {'allOf': [{'$ref': '#/components/schemas/RobotBase'}, {
            'properties': {k: v for k, v in robot['properties'].items() if k != 'id'}}]}
    assert altered(composed).differences == []


def test_the_spec_is_fetched_without_the_token_and_with_it_when_refused():
    asked = []

    def answer(request):
        asked.append(request.headers.get('Authorization'))
        if 'Authorization' not in request.headers:
            return httpx.Response(401, json={'error': {'code': 'unauthorized',
                                                       'message': 'token please'}})
        return httpx.Response(200, json=SPEC)

    async def fetch():
        async with httpx.AsyncClient(base_url='http://api', headers={
                'Authorization': 'Bearer leaked?'}, transport=httpx.MockTransport(answer)) as http:
            return await fetch_openapi(http, Token(TOKEN), 5.0)
    assert asyncio.run(fetch()) == SPEC
    assert asked == [None, f'Bearer {TOKEN}']  # the client's default header never sent


def test_a_refused_spec_is_an_error_without_the_token():
    def answer(request):
        return httpx.Response(403, json={'error': {'code': 'forbidden',
                                                   'message': f'no for {TOKEN}'}})

    async def fetch():
        async with httpx.AsyncClient(base_url='http://api',
                                     transport=httpx.MockTransport(answer)) as http:
            return await fetch_openapi(http, Token(TOKEN), 5.0)
    with pytest.raises(ApiError) as info:
        asyncio.run(fetch())
    assert info.value.code == 'forbidden' and TOKEN not in str(info.value)


@pytest.fixture
def emulator():
    emulator = EmulatorThread(robots=5)
    yield emulator
    emulator.close()


def test_lists_follow_the_pagination_the_live_spec_declares(emulator):
    emulator.control('POST', '/_emulator/pagination', {'page_size': 2})

    async def robots(check):
        async with ApiClient(Credentials(emulator.url, Token(emulator.token))) as client:
            if check:
                assert (await client.check_contract()).compatible
            return [robot.id for robot in await client.list_robots()]
    assert len(asyncio.run(robots(check=False))) == 2  # the first page only
    assert asyncio.run(robots(check=True)) == [f'rbt_{i:04d}' for i in range(1, 6)]


def test_a_status_the_bridge_does_not_know_is_kept(emulator):
    emulator.control('POST', '/_emulator/robots/rbt_0002', {'status': 'maintenance'})

    async def robots():
        async with ApiClient(Credentials(emulator.url, Token(emulator.token))) as client:
            return {robot.id: robot.status for robot in await client.list_robots()}
    assert asyncio.run(robots())['rbt_0002'] == 'maintenance'


def test_check_api_prints_the_report_and_exits_by_compatibility(emulator, capsys, monkeypatch):
    monkeypatch.delenv('ROBOFLARE_TOKEN', raising=False)
    monkeypatch.setenv('HOME', '/nonexistent')  # no credentials file: the spec is public
    installed = subprocess.run([executable('check_api'), '--base-url', emulator.url],
                               capture_output=True, text=True, timeout=60)
    assert installed.returncode == 0, installed.stderr
    assert 'compatible: the 14 routes the bridge uses match' in installed.stdout
    spec = copy.deepcopy(SPEC)
    del spec['paths']['/api/robots/{id}']
    emulator.control('POST', '/_emulator/openapi', spec)
    assert check_api.main(['--base-url', emulator.url]) == 1
    out = capsys.readouterr().out
    assert '1 differences the bridge cannot absorb' in out
    assert 'GET /api/robots/{id}: expected the route, found no such path' in out
    emulator.control('POST', '/_emulator/openapi', None)
    assert check_api.main(['--base-url', emulator.url]) == 0
    assert check_api.main(['--base-url', 'http://127.0.0.1:9', '--timeout', '2']) == 1
    assert 'not checked: cannot fetch /openapi.json' in capsys.readouterr().out


def test_an_unreadable_spec_is_retried_and_reported_once_never_fatal(emulator, caplog):
    emulator.control('POST', '/_emulator/openapi', ['not', 'a', 'spec'])

    async def watch():
        async with ApiClient(Credentials(emulator.url, Token(emulator.token))) as client:
            watching = asyncio.ensure_future(client.watch_contract(0.05, 0.05))

            async def first_failed_check():
                while client.contract is None:
                    await asyncio.sleep(0.01)  # set on this loop by the watch; no event
            await asyncio.wait_for(first_failed_check(), 10)
            first = client.contract
            assert [r.id for r in await client.list_robots()]  # the API works meanwhile
            await asyncio.get_running_loop().run_in_executor(
                None, emulator.control, 'POST', '/_emulator/openapi', None)
            return first, await asyncio.wait_for(watching, 10)
    with caplog.at_level('INFO', logger='roboflare_bridge.control.api_client'):
        first, final = asyncio.run(watch())
    assert first.error == 'not an OpenAPI document (no "paths" object)'
    assert not first.compatible and final.compatible and final.differences == []
    assert caplog.text.count('not an OpenAPI document') == 1  # once, not every retry
    assert caplog.text.count('API contract against') == 1

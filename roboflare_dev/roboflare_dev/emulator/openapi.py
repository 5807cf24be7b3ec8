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
The OpenAPI 3.1 document the emulator serves at /openapi.json: every /api route it serves.

With pagination on (``page_size``), list envelopes declare ``next_cursor`` and list routes a
``cursor`` query parameter, as the emulator then answers.
"""

from __future__ import annotations

from typing import Any, Dict


def _ref(name: str) -> Dict[str, str]:
    return {'$ref': f'#/components/schemas/{name}'}


def _list_of(name: str, paged: bool = False) -> Dict[str, Any]:
    envelope: Dict[str, Any] = {'type': 'object', 'required': ['items'],
                                'properties': {'items': {'type': 'array', 'items': _ref(name)}}}
    if paged:
        envelope['properties']['next_cursor'] = {'type': ['string', 'null']}
    return envelope


def _data(name: str) -> Dict[str, Any]:
    return {'type': 'object', 'required': ['data'], 'properties': {'data': _ref(name)}}


def _op(summary: str, body: Dict[str, Any], status: str = '200',
        params: tuple = (), request: str = '', idempotent: bool = False) -> Dict[str, Any]:
    op: Dict[str, Any] = {
        'summary': summary,
        'responses': {status: {'description': 'OK',
                               'content': {'application/json': {'schema': body}}},
                      'default': {'description': 'Error',
                                  'content': {'application/json': {'schema': _ref('Error')}}}},
    }
    parameters = [{'name': p, 'in': 'path' if p in ('id', 'path') else 'query',
                   'required': p in ('id', 'path'), 'schema': {'type': 'string'}}
                  for p in params]
    if idempotent:
        parameters.append({'name': 'Idempotency-Key', 'in': 'header', 'required': True,
                           'schema': {'type': 'string'}})
    if parameters:
        op['parameters'] = parameters
    if request:
        op['requestBody'] = {'required': True,
                             'content': {'application/json': {'schema': _ref(request)}}}
    return op


_TIME = {'type': 'string', 'format': 'date-time'}
_STR = {'type': 'string'}


def _deployment_schema(subject: str) -> Dict[str, Any]:
    return {'type': 'object', 'required': ['id', subject, 'robot_ids', 'status'],
            'properties': {
                'id': _STR, subject: _STR, 'robot_ids': {'type': 'array', 'items': _STR},
                'status': {'type': 'string', 'enum': ['pending', 'in_progress', 'succeeded',
                                                      'failed', 'cancelled']},
                'progress': {'type': 'number', 'minimum': 0, 'maximum': 1},
                'message': _STR, 'robots': {'type': 'array', 'items': _ref('RobotState')},
                'created_at': _TIME, 'updated_at': _TIME}}


def openapi_document(server_url: str, page_size: int = 0) -> Dict[str, Any]:
    """Return the document; ``server_url`` is where this emulator listens."""
    paged = page_size > 0
    cursor = ('cursor',) if paged else ()
    paths: Dict[str, Dict[str, Any]] = {
        '/api/robots': {'get': _op('List robots', _list_of('Robot', paged), params=cursor)},
        '/api/robots/{id}': {'get': _op('Get a robot', _data('Robot'), params=('id',))},
        '/api/releases': {'get': _op('List releases', _list_of('Release', paged),
                                     params=cursor)},
        '/api/releases/{id}': {'get': _op('Get a release', _data('Release'), params=('id',))},
        '/api/configs': {'get': _op('List configs', _list_of('Config', paged), params=cursor)},
        '/api/configs/{id}': {'get': _op('Get a config', _data('Config'), params=('id',))},
        '/api/admin/{path}': {method: _op('Admin only: refused without the admin token',
                                          _ref('Error'), params=('path',))
                              for method in ('get', 'post', 'put', 'patch', 'delete')},
    }
    for path, name, subject in (('/api/deployments', 'Deployment', 'release'),
                                ('/api/configs/deployments', 'ConfigDeployment', 'config')):
        paths[path] = {
            'get': _op(f'List {name}s', _list_of(name, paged),
                       params=('robot_id', 'status') + cursor),
            'post': _op(f'Create a {name} of a {subject}', _data(name), '201',
                        request=f'Create{name}', idempotent=True)}
        paths[path + '/{id}'] = {'get': _op(f'Get a {name}', _data(name), params=('id',))}
        paths[path + '/{id}/cancel'] = {'post': _op(f'Cancel a {name}', _data(name),
                                                    params=('id',))}
    schemas = {
        'Error': {'type': 'object', 'required': ['error'], 'properties': {'error': {
            'type': 'object', 'required': ['code', 'message'],
            'properties': {'code': _STR, 'message': _STR}}}},
        'Robot': {'type': 'object', 'required': ['id', 'name', 'status'], 'properties': {
            'id': _STR, 'name': _STR, 'status': {'type': 'string', 'enum': ['online', 'offline']},
            'last_seen_at': _TIME}},
        'Release': {'type': 'object', 'required': ['id', 'name', 'version'], 'properties': {
            'id': _STR, 'name': _STR, 'version': _STR, 'created_at': _TIME}},
        'Config': {'type': 'object', 'required': ['id', 'name', 'version'], 'properties': {
            'id': _STR, 'name': _STR, 'version': _STR, 'content': _STR, 'content_type': _STR,
            'created_at': _TIME}},
        'RobotState': {'type': 'object', 'required': ['robot_id', 'status'], 'properties': {
            'robot_id': _STR, 'status': _STR, 'message': _STR}},
        'Deployment': _deployment_schema('release_id'),
        'ConfigDeployment': _deployment_schema('config_id'),
        'CreateDeployment': {'type': 'object', 'required': ['release_id', 'robot_ids'],
                             'properties': {'release_id': _STR,
                                            'robot_ids': {'type': 'array', 'items': _STR}}},
        'CreateConfigDeployment': {'type': 'object', 'required': ['config_id', 'robot_ids'],
                                   'properties': {'config_id': _STR,
                                                  'robot_ids': {'type': 'array', 'items': _STR}}},
    }
    return {
        'openapi': '3.1.0',
        'info': {'title': 'Roboflare API (emulated)', 'version': '0.1.0'},
        'servers': [{'url': server_url}],
        'security': [{'bearer': []}],
        'components': {'securitySchemes': {'bearer': {'type': 'http', 'scheme': 'bearer'}},
                       'schemas': schemas},
        'paths': paths,
    }

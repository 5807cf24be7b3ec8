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
The live ``/openapi.json`` held against what the bridge relies on (resources.ROUTES_USED).

Pure Python, no transport: :func:`check_document` takes the parsed document and returns a
:class:`Report`, one :class:`Difference` per line (route, field, expected, found). Some
differences the bridge absorbs and only shows: an optional field missing (its default is
used), enum values it does not know (kept as text), pagination (followed in every list
call). The others make it incompatible: a route or method missing, a changed envelope, a
field it needs missing or of another type, an idempotent POST without ``Idempotency-Key``.
Extra routes and fields are not differences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import re
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set

from .resources import FieldUse, IDEMPOTENCY_HEADER, ResourceUse, ROUTES_USED, RouteUse

# Where a list envelope may name its next page, and the query parameter that asks for it.
CURSOR_FIELDS = ('next_cursor', 'next_page_token', 'cursor')
CURSOR_PARAMETERS = ('cursor', 'page_token', 'after')
_PARAMETER = re.compile(r'\{[^}]*\}')
_MAX_DEPTH = 32  # $ref chains and nesting


@dataclass(frozen=True)
class Difference:
    route: str
    field: str
    expected: str
    found: str
    absorbed: bool = False  # the bridge works with it; shown, not fatal

    def line(self) -> str:
        where = f'{self.route}: {self.field}' if self.field else self.route
        suffix = ' (absorbed)' if self.absorbed else ''
        return f'{where}: expected {self.expected}, found {self.found}{suffix}'


@dataclass(frozen=True)
class Pagination:
    """How a list route pages: the envelope's cursor field and the query parameter."""

    cursor_field: str
    query_parameter: str


@dataclass
class Report:
    differences: List[Difference] = field(default_factory=list)
    pagination: Dict[str, Pagination] = field(default_factory=dict)  # by route path
    error: str = ''  # the spec could not be fetched or read: nothing was checked

    @property
    def compatible(self) -> bool:
        return not self.error and all(d.absorbed for d in self.differences)

    def summary(self) -> str:
        if self.error:
            return f'not checked: {self.error}'
        broken = sum(not d.absorbed for d in self.differences)
        if not self.differences:
            return f'compatible: the {len(ROUTES_USED)} routes the bridge uses match'
        if not broken:
            return f'compatible, {len(self.differences)} differences absorbed'
        return f'{broken} differences the bridge cannot absorb'

    def lines(self) -> List[str]:
        return [self.summary()] + [d.line() for d in self.differences]


def check_document(document: Any, routes: Sequence[RouteUse] = ROUTES_USED) -> Report:
    """Return how an OpenAPI document differs from what the bridge uses."""
    if not isinstance(document, dict) or not isinstance(document.get('paths'), dict):
        return Report(error='not an OpenAPI document (no "paths" object)')
    spec = _Spec(document)
    report = Report()
    for route in routes:
        report.differences += spec.check_route(route, report.pagination)
    return report


def _normalised(path: str) -> str:
    return _PARAMETER.sub('{}', path.rstrip('/') or '/')


def _types(schema: Mapping[str, Any]) -> Set[str]:
    kind = schema.get('type')
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {k for k in kind if isinstance(k, str)}
    return set()


def _describe(schema: Mapping[str, Any]) -> str:
    types = _types(schema) - {'null'}
    if 'array' in types:
        return 'an array'
    properties = sorted(schema.get('properties') or {})
    if properties:
        return 'an object with ' + ', '.join(properties[:6])
    return ' or '.join(sorted(types)) or 'an unspecified schema'


class _Spec:
    """One document: ``$ref`` and ``allOf`` resolved on demand."""

    def __init__(self, document: Dict[str, Any]) -> None:
        self.document = document
        self.paths = {_normalised(path): item for path, item in document['paths'].items()
                      if isinstance(item, dict)}

    def resolve(self, node: Any, depth: int = 0) -> Dict[str, Any]:
        if not isinstance(node, dict) or depth > _MAX_DEPTH:
            return {}
        reference = node.get('$ref')
        if isinstance(reference, str):
            target: Any = self.document
            if not reference.startswith('#/'):
                return {}  # external references are not followed
            for step in reference[2:].split('/'):
                target = target.get(step.replace('~1', '/').replace('~0', '~')) \
                    if isinstance(target, dict) else None
            return self.resolve(target, depth + 1)
        if isinstance(node.get('allOf'), list):
            merged: Dict[str, Any] = {'properties': {}, 'required': []}
            own = {key: value for key, value in node.items() if key != 'allOf'}
            for each in [own] + node['allOf']:
                part = self.resolve(each, depth + 1)
                merged['properties'].update(part.get('properties') or {})
                merged['required'] += list(part.get('required') or [])
                for key in ('type', 'enum', 'items'):
                    if key in part:
                        merged.setdefault(key, part[key])
            return merged
        return node

    def check_route(self, route: RouteUse,
                    pagination: Dict[str, Pagination]) -> List[Difference]:
        item = self.paths.get(_normalised(route.path))
        if item is None:
            return [Difference(route.name, '', 'the route', 'no such path')]
        operation = item.get(route.method.lower())
        if not isinstance(operation, dict):
            methods = sorted(m.upper() for m in item if m in (
                'get', 'put', 'post', 'delete', 'patch'))
            return [Difference(route.name, '', f'method {route.method}',
                               'only ' + (', '.join(methods) or 'no methods'))]
        parameters = [self.resolve(p) for p in
                      list(item.get('parameters') or []) + list(operation.get('parameters')
                                                                or [])]
        differences = []
        if route.idempotent and not any(
                p.get('in') == 'header' and str(p.get('name', '')).lower()
                == IDEMPOTENCY_HEADER.lower() for p in parameters):
            differences.append(Difference(route.name, IDEMPOTENCY_HEADER,
                                          'a declared request header', 'not declared'))
        schema = self._response_schema(operation)
        if schema is None:
            return differences + [Difference(route.name, '', 'a JSON success response',
                                             'none declared')]
        envelope = self.resolve(schema)
        member = self.resolve((envelope.get('properties') or {}).get(route.envelope))
        if route.envelope == 'items':
            array = 'array' in _types(member) or (not _types(member) and 'items' in member)
            if not array:
                return differences + [Difference(route.name, '', 'a list envelope {"items": '
                                                 '[...]}', _describe(envelope))]
            differences += self._pagination(route, envelope, parameters, pagination)
            resource, where = self.resolve(member.get('items')), 'items[]'
        else:
            if not member:
                return differences + [Difference(route.name, '', 'a single-object envelope '
                                                 '{"data": {...}}', _describe(envelope))]
            resource, where = member, 'data'
        return differences + list(self._fields(route.name, where, route.resource, resource))

    def _response_schema(self, operation: Mapping[str, Any]) -> Optional[Any]:
        responses = operation.get('responses')
        if not isinstance(responses, dict):
            return None
        for status, response in sorted(responses.items(), key=lambda item: str(item[0])):
            if not str(status).startswith('2'):
                continue
            response = self.resolve(response)
            content = response.get('content') or {}
            for media, body in content.items():
                if 'json' in media and isinstance(body, dict) and 'schema' in body:
                    return body['schema']
        return None

    def _pagination(self, route: RouteUse, envelope: Mapping[str, Any],
                    parameters: List[Dict[str, Any]],
                    pagination: Dict[str, Pagination]) -> List[Difference]:
        properties = envelope.get('properties') or {}
        cursor = next((name for name in CURSOR_FIELDS if name in properties), None)
        if cursor is None:
            return []
        queries = {str(p.get('name')) for p in parameters if p.get('in') == 'query'}
        parameter = next((name for name in CURSOR_PARAMETERS if name in queries), None)
        if parameter is None:
            return [Difference(route.name, cursor, f'a query parameter to ask for the next '
                               f'page ({", ".join(CURSOR_PARAMETERS)})', 'none: only the '
                               'first page would be read')]
        pagination[route.path] = Pagination(cursor, parameter)
        return [Difference(route.name, cursor, 'one page', f'pages ({cursor} -> '
                           f'?{parameter}=), followed', absorbed=True)]

    def _fields(self, route: str, where: str, use: ResourceUse, schema: Mapping[str, Any],
                depth: int = 0) -> Iterator[Difference]:
        properties = schema.get('properties') or {}
        required = set(schema.get('required') or [])
        for field_use in use.fields:
            path = f'{where}.{field_use.name}'
            declared = self.resolve(properties.get(field_use.name))
            if field_use.name not in properties:
                if field_use.required:
                    yield Difference(route, path, f'{field_use.kind} (the bridge needs it)',
                                     'no such field')
                else:
                    yield Difference(route, path, field_use.kind, 'no such field (its '
                                     'default is used)', absorbed=True)
                continue
            yield from self._field(route, path, field_use, declared, required, depth)

    def _field(self, route: str, path: str, use: FieldUse, declared: Mapping[str, Any],
               required: Set[str], depth: int) -> Iterator[Difference]:
        types = _types(declared) - {'null'}
        compatible = not types or use.kind in types or (use.kind == 'number'
                                                        and 'integer' in types)
        if not compatible:
            yield Difference(route, path, use.kind, ' or '.join(sorted(types)))
            return
        if use.required and use.name not in required:
            yield Difference(route, path, 'a required field (the bridge needs it)',
                             'optional')
        enum = declared.get('enum')
        if use.known and isinstance(enum, list):
            unknown = sorted(str(v) for v in enum if v not in use.known)
            if unknown:
                yield Difference(route, path, 'one of ' + ', '.join(sorted(use.known)),
                                 'also ' + ', '.join(unknown) + ' (kept as text)',
                                 absorbed=True)
        if isinstance(use.items, ResourceUse) and depth < _MAX_DEPTH:
            element = self.resolve(declared.get('items'))
            yield from self._fields(route, path + '[]', use.items, element, depth + 1)
        elif isinstance(use.items, str):
            element = self.resolve(declared.get('items'))
            element_types = _types(element) - {'null'}
            if element_types and use.items not in element_types:
                yield Difference(route, path + '[]', use.items,
                                 ' or '.join(sorted(element_types)))


__all__ = ['check_document', 'CURSOR_FIELDS', 'CURSOR_PARAMETERS', 'Difference',
           'Pagination', 'Report']

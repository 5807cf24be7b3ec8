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
"""Parameter validation, topic globs and ROS-safe robot names (no ROS graph needed)."""

import logging
from pathlib import Path

import pytest
from rcl_interfaces.msg import ParameterType
import rclpy
from rclpy.parameter import Parameter
from roboflare_bridge.common.globs import glob_match, topic_selected
from roboflare_bridge.mirror.topic_qos import QosRules, TopicQos
from roboflare_bridge.parameters import (
    BridgeConfig, build_config, declare_and_read, ParameterError, PARAMETERS, render_markdown,
    ros_name, RUNTIME,
)


def test_defaults_are_valid_and_match_the_dataclass():
    assert build_config({}) == BridgeConfig()
    assert BridgeConfig().topics == ('/**',) and BridgeConfig().namespace_format == \
        '/roboflare/{robot}'


def test_values_are_normalised():
    config = build_config({'robots': ['rbt_1', ' rbt_2 ', ''], 'request_timeout_s': 5,
                           'deny_topics': [], 'qos_overrides': ['/scan=best_effort']})
    assert config.robots == ('rbt_1', 'rbt_2')
    assert config.request_timeout_s == 5.0 and isinstance(config.request_timeout_s, float)
    assert config.deny_topics == () and config.qos_overrides == (('/scan', 'best_effort'),)


@pytest.mark.parametrize('values,name', [
    ({'request_timeout_s': 0.0}, 'request_timeout_s'),
    ({'deploy_poll_interval_s': -1.0}, 'deploy_poll_interval_s'),
    ({'log_min_level': 'verbose'}, 'log_min_level'),
    ({'forward_logs': True}, 'robot_id'),
    ({'namespace_format': '/fleet/{name}'}, 'namespace_format'),
    ({'namespace_format': '/fleet'}, 'namespace_format'),
    ({'namespace_format': 'fleet/{robot}'}, 'namespace_format'),
    ({'frame_prefix_format': '{robot'}, 'frame_prefix_format'),
    ({'topics': ['odom']}, 'topics'),
    ({'robots': ['a', 'a']}, 'robots'),
    ({'robots': [1, 2]}, 'robots'),
    ({'robots': 'rbt_1'}, 'robots'),
    ({'qos_overrides': ['/scan:fast']}, 'qos_overrides'),
    ({'qos_overrides': ['/scan=durable']}, 'qos_overrides'),
    ({'qos_overrides': ['scan=best_effort']}, 'qos_overrides'),
    ({'qos_overrides': ['/scan=best_effort', '/scan=reliable']}, 'qos_overrides'),
    ({'transient_local_topics': ['costmap']}, 'transient_local_topics'),
    ({'echo_max_frame_bytes': 10}, 'echo_max_frame_bytes'),
    ({'spool_max_bytes': 10}, 'spool_max_bytes'),
    ({'camera': 'yes'}, 'camera'),
])
def test_wrong_values_are_refused_naming_the_parameter(values, name):
    with pytest.raises(ParameterError, match=f"'{name}'"):
        build_config(values)


@pytest.mark.parametrize('topic,pattern,expected', [
    ('/odom', '/**', True), ('/a/b/c', '/**', True), ('/odom', '/*', True),
    ('/a/b', '/*', False), ('/a/b', '/a/*', True), ('/camera/image', '/camera/**', True),
    ('/scan', '/sca?', True), ('/odom_filtered', '/odom', False), ('/x.y', '/x.y', True),
    ('/xzy', '/x.y', False),
])
def test_globs(topic, pattern, expected):
    assert glob_match(topic, pattern) is expected


def test_deny_applies_after_allow():
    assert topic_selected('/odom', ['/**'], ['/camera/**'])
    assert not topic_selected('/camera/raw', ['/**'], ['/camera/**'])
    assert not topic_selected('/odom', ['/scan'], [])


@pytest.mark.parametrize('name,expected', [
    ('robot-1', 'robot_1'), ('Warehouse Bot 7', 'warehouse_bot_7'), ('7up', 'r_7up'),
    ('', 'r_'), ('émile', '_mile'), ('a.b/c', 'a_b_c'),
])
def test_ros_name(name, expected):
    assert ros_name(name) == expected


def test_latched_topics_are_transient_local_with_depth_one_and_overrides_apply():
    rules = QosRules.of(build_config({'transient_local_topics': ['/costmap/**'],
                                      'qos_overrides': ['/scan=best_effort', '/map=volatile',
                                                        '/semantic/*=transient_local',
                                                        '/semantic/*=best_effort']}))
    latched = TopicQos('reliable', 'transient_local', 1)
    assert rules.for_topic('/tf_static') == latched
    assert rules.for_topic('/robot_description') == latched
    assert rules.for_topic('/costmap/global') == latched
    assert rules.for_topic('/map') == TopicQos('reliable', 'volatile', 10)  # overridden
    assert rules.for_topic('/scan') == TopicQos('best_effort', 'volatile', 10)
    assert rules.for_topic('/semantic/rooms') == TopicQos('best_effort', 'transient_local', 1)
    assert rules.for_topic('/semantic/a/b') == TopicQos('reliable', 'volatile', 10)
    assert rules.for_topic('/tf') == TopicQos('reliable', 'volatile', 100)
    assert rules.for_topic('/odom') == TopicQos()


def test_a_bad_qos_override_is_refused_by_its_entry():
    with pytest.raises(ParameterError) as raised:
        build_config({'qos_overrides': ['/scan=best_effort', '/map=latched']})
    assert "'/map=latched'" in str(raised.value) and 'transient_local' in str(raised.value)
    with pytest.raises(ParameterError, match='/scan is given both best_effort and reliable'):
        build_config({'qos_overrides': ['/scan=best_effort', '/scan=reliable']})


def declared_node():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('parameter_table_test', context=context)
    return context, node, declare_and_read(node)


def test_every_parameter_is_declared_with_its_type_range_and_constraints():
    context, node, config = declared_node()
    try:
        assert config == BridgeConfig()
        described = {d.name: d for d in node.describe_parameters([p.name for p in PARAMETERS])}
        for parameter in PARAMETERS:
            d = described[parameter.name]
            assert not d.dynamic_typing and d.type == parameter.ros_type, parameter.name
            assert d.read_only == (parameter.name not in RUNTIME), parameter.name
            assert d.description == parameter.spec.description
        # string arrays typed even when empty; numbers with their ranges
        assert described['robots'].type == ParameterType.PARAMETER_STRING_ARRAY
        poll = described['robots_poll_interval_s'].floating_point_range[0]
        assert (poll.from_value, poll.to_value) == (0.1, 86400.0)
        shards = described['shard_count'].integer_range[0]
        assert (shards.from_value, shards.to_value) == (1, 1024)
        assert 'one of debug, info, warn, error, fatal' in \
            described['log_min_level'].additional_constraints
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_rclpy_itself_refuses_a_value_out_of_range_or_of_the_wrong_type():
    context, node, _ = declared_node()
    try:
        refused = node.set_parameters([
            Parameter('robots_poll_interval_s', value=0.0),  # under 0.1
            Parameter('robots_poll_interval_s', value=5),  # an integer for a double
            Parameter('robots', value=['*']),  # fine: changeable at run time
            Parameter('shard_count', value=2)])  # read-only
        assert [r.successful for r in refused] == [False, False, True, False]
        assert 'range' in refused[0].reason.lower() and 'type' in refused[1].reason.lower()
        assert node.get_parameter('robots_poll_interval_s').value == 30.0
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_the_docs_tables_are_the_tables_rendering():
    root = Path(__file__).resolve().parents[2]
    documents = [root / 'README.md', root / 'docs' / 'ros-api.md']
    if not documents[1].exists():
        pytest.skip('not a repository checkout')
    table = render_markdown()
    for document in documents:
        text = document.read_text()
        start, end = text.index('<!-- parameters -->\n'), text.index('<!-- /parameters -->')
        assert text[start + len('<!-- parameters -->\n'):end] == table, (
            f'{document.name}: regenerate with python -m roboflare_bridge.parameters --markdown')


def test_the_table_holds_every_parameter_of_the_ros_api_once():
    names = [parameter.name for parameter in PARAMETERS]
    assert len(names) == len(set(names)) and {
        'base_url', 'token_file', 'robots', 'topics', 'deny_topics', 'namespace_format',
        'frame_prefix_format', 'camera', 'decode_images', 'remote_logs', 'forward_logs',
        'robot_id', 'log_min_level', 'log_ignore_nodes', 'spool_dir', 'spool_max_bytes',
        'request_timeout_s', 'deploy_poll_interval_s', 'deny_robots',
        'robots_poll_interval_s', 'shard_count', 'shard_index', 'transient_local_topics',
        'qos_overrides'} <= set(names)


def test_a_whole_number_for_a_floating_point_parameter_is_taken_as_one(caplog):
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('parameter_table_test', context=context, parameter_overrides=[
        Parameter('robots_poll_interval_s', value=5)])  # as a params file may write it
    try:
        with caplog.at_level(logging.WARNING, logger='roboflare_bridge.parameters'):
            config = declare_and_read(node)
        assert config.robots_poll_interval_s == 5.0
        assert type(config.robots_poll_interval_s) is float
        assert 'write 5.0' in caplog.text
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)

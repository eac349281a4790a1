"""The filter lvdiff.thin.replicate_plan: registered, and the plan's refusals as filter errors (the
decisions themselves: module_utils/test_replicate.py). Here, not beside _replicate's tests:
ansible-test runs module_utils tests where only ansible.module_utils imports, not ansible.errors."""
from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.lvdiff.thin.plugins.filter.replicate_plan import FilterModule


def report(*names):
    lvs = [{'lv_name': 'pool', 'lv_uuid': 'P', 'lv_attr': 'twi-aotz--', 'lv_tags': '', 'lv_size': '134217728',
            'pool_lv': ''}]
    lvs += [{'lv_name': n, 'lv_uuid': 'U-' + n, 'lv_attr': 'Vwi-a-tz--', 'lv_tags': '', 'lv_size': '134217728',
             'pool_lv': 'pool'} for n in names]
    return json.dumps({'report': [{'lv': lvs}]})


def test_filter_is_registered_and_turns_errors_into_filter_errors():
    f = FilterModule().filters()['replicate_plan']
    assert f(report('data'), report(), 'vg0', 'data', 'web1', keep_source='2')['prefix'] == 'web1-vg0-data'
    with pytest.raises(AnsibleFilterError, match='does not exist'):
        f(report(), report(), 'vg0', 'data', 'web1')


def test_replicate_run_is_registered_and_turns_errors_into_filter_errors():
    from ansible_collections.lvdiff.thin.plugins.filter.replicate_run import FilterModule as RunFilters
    f = RunFilters().filters()['replicate_run']
    state = f([{'vg': 'vg0', 'lv': 'data'}], 'start', 'web1',
              {'target_vg': 'vgb', 'target_pool': 'pool', 'keep_source': 2, 'keep_target': 3,
               'spool_dir': '/o', 'target_spool_dir': '/i'})
    assert state['probe'] == [{'vg': 'vg0', 'lv': 'data'}] and state['target_vgs'] == ['vgb']
    with pytest.raises(AnsibleFilterError, match='unknown stage'):
        f(state, 'sideways')

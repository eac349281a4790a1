"""The filter lvdiff.thin.backup_run: registered, and the run's refusals as filter errors (the decisions
themselves: module_utils/test_backuprun.py; here because only this environment imports ansible.errors)."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.lvdiff.thin.plugins.filter.backup_run import FilterModule

DEFAULTS = {'root': '/srv/backup', 'spool_dir': '/var/spool/bak', 'policy': {'keep_last': 7}, 'keep_snapshots': 2}


def test_backup_run_is_registered_and_turns_refusals_into_filter_errors():
    f = FilterModule().filters()['backup_run']
    s = f([{'vg': 'vg0', 'lv': 'data'}], 'start', 'web1', DEFAULTS, now='2026-12-01T03:00:00Z')
    assert (s['probe'], s['time']) == ([{'vg': 'vg0', 'lv': 'data'}], '20261201T030000Z')
    with pytest.raises(AnsibleFilterError, match='probe returned 0 results for 1 items'):
        f(s, 'probed', {'lvs': {}, 'volumes': []}, {'volumes': []})
    with pytest.raises(AnsibleFilterError, match='unknown key keep_lats'):
        f([{'vg': 'vg0', 'lv': 'data', 'policy': {'keep_lats': 1}}], 'start', 'web1', DEFAULTS)

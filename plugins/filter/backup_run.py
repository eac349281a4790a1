# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter lvdiff.thin.backup_run (documented in backup_run.yml beside this file)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.lvdiff.thin.plugins.module_utils._backuprun import advance
from ansible_collections.lvdiff.thin.plugins.module_utils._replicate import PlanError


def backup_run(state, stage, *args, **kwargs):
    try:
        return advance(state, stage, *args, **kwargs)
    except PlanError as e:
        raise AnsibleFilterError(str(e))


class FilterModule(object):
    def filters(self):
        return {'backup_run': backup_run}

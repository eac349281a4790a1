# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter lvdiff.thin.replicate_plan (documented in replicate_plan.yml beside this file)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.lvdiff.thin.plugins.module_utils._replicate import PlanError, plan


def replicate_plan(source_report, target_report, vg, lv, host, keep_source=2, keep_target=7, prefix=None):
    try:
        return plan(source_report, target_report, vg, lv, host, int(keep_source), int(keep_target), prefix or None)
    except PlanError as e:
        raise AnsibleFilterError(str(e))


class FilterModule(object):
    def filters(self):
        return {'replicate_plan': replicate_plan}

# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet benchmark's profile: each task's wall time, written as JSON to $FLEET_TASK_TIMES at the end.

The linear strategy runs one task at a time on all hosts, so a task's time is from its start to the
next task's start (or the play's end)."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: task_times
type: aggregate
short_description: each task's wall time (the fleet benchmark's profile)
description: Writes [[task name, seconds, status], ...] to the file named by FLEET_TASK_TIMES.
requirements: [enable it with ANSIBLE_CALLBACKS_ENABLED=task_times]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'task_times'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.times = []     # [name, seconds, status]
        self.started = None

    def _close(self):
        if self.started is not None:
            self.times[-1][1] = round(time.perf_counter() - self.started, 3)
            self.started = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        self.times.append([task.get_name(), 0.0, 'skipped'])
        self.started = time.perf_counter()

    def _status(self, status):
        if self.times and self.times[-1][2] != 'failed':
            self.times[-1][2] = status

    def v2_runner_on_ok(self, result):
        self._status('ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._status('failed')

    def v2_playbook_on_stats(self, stats):
        self._close()
        path = os.environ.get('FLEET_TASK_TIMES')
        if path:
            with open(path, 'w') as f:
                json.dump(self.times, f)

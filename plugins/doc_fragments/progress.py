# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):

    # What a progress file holds and how to follow it: one wording for the modules that move data for long
    # (lvdiff, send, transfer, lvpatch, restore). Each module says itself where its file goes by default.
    DOCUMENTATION = r'''
options: {}
notes:
  - Progress. While data moves, the module rewrites its progress file at most once a second, atomically (a
    temporary file in the same directory renamed onto it, mode V(0600)), and removes it at the end; the result
    carries the final numbers. The file is one line of JSON with C(phase), C(done) and C(total) (bytes),
    C(percent), C(rate) (bytes per second), C(eta_seconds), C(updated) (UTC) and C(pid). Follow it on the
    managed host with C(watch -n 2 cat FILE), for example while the task runs under C(async) and C(poll).
  - A progress file is best effort. An existing path that is not a regular file (a symlink, a directory) is
    left alone and no progress is written; a file that cannot be written does not fail the run. A run that is
    killed leaves its last progress file, which the next run replaces. Nothing is written in check mode.
'''

# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):

    # Every module of the collection runs fully in check mode (each says how in its own details) and has
    # no diff mode: its results say what changed.
    DOCUMENTATION = r'''
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return the changed status it would have, without changing the target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
'''

    THIN_TOOLS = r'''
options: {}
requirements:
  - Python 3.9 or newer and C(lxml) on the managed host.
  - C(lvm2) and C(thin-provisioning-tools) 0.7.4 or newer (not 0.7.5; in the 1.x series 1.0.6 or newer),
    on the managed host.
  - Root privileges (C(become)).
'''

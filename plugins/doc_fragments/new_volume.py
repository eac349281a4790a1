# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):

    # The final state of the volume a restoring module makes (lvpatch, restore): one wording, one default.
    DOCUMENTATION = r'''
options:
  permission:
    description:
      - Permission of the new volume. V(r), read-only, keeps it fit as the base of the next diff of its chain;
        V(rw) makes it writable.
    type: str
    choices: [r, rw]
    default: r
  activate:
    description:
      - V(false) leaves the new volume inactive with the activation skip flag set, so that it stays inactive
        across reboots (activate it with C(lvchange -ay -K)).
      - V(true) leaves it active, without the activation skip flag.
    type: bool
    default: false
  tags:
    description:
      - LVM tags to add to the new volume, besides its own C(lvdiff_origin:) and C(lvdiff_sha1:). An existing
        volume made from the same diff (or backup) gets those it lacks (RV(ignore:changed=true)).
      - Each of letters, digits and C(_+.:=!#&/-), not starting with C(-), up to 1024 characters.
    type: list
    elements: str
    default: []
'''

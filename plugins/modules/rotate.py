#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: rotate
short_description: Remove tagged thin volumes and diff files, on a source or a backup host
version_added: 0.1.0
description:
  - The rotation step of the batched engine of the role C(lvdiff.thin.replicate), on either side.
  - Removes each thin volume of O(remove) only if it carries the item's tag, so that what the role decided
    to remove is its own snapshot or replica and nothing else of that name.
  - Removes the files of O(files) and sweeps the directories of O(sweep) of partial transfers (and diffs
    with O(sweep_diffs)). Only regular files are removed; symlinks are neither followed nor removed.
  - One item's failure is that item's result; the others are still done and the module does not fail for it.
author:
  - lvdiff.thin contributors (!UNKNOWN)
attributes:
  check_mode:
    details: Checks every item and reports what would be removed; removes nothing.
extends_documentation_fragment:
  - lvdiff.thin.attributes
requirements:
  - C(lvm2) on the managed host, for O(remove).
  - Root privileges (C(become)).
options:
  remove:
    description:
      - Thin volumes to remove. An item whose volume does not exist is fine (nothing to do); one without its
        O(remove[].tag), or not a thin volume, fails with nothing removed.
    type: list
    elements: dict
    default: []
    suboptions:
      vg:
        description: Volume group.
        type: str
        required: true
      lv:
        description: Thin volume.
        type: str
        required: true
      tag:
        description: The LVM tag the volume must carry to be removed.
        type: str
        required: true
  files:
    description:
      - Files to remove, if they are regular files. A missing file is fine; a symlink, a directory or any
        other kind of file fails its item.
    type: list
    elements: path
    default: []
  sweep:
    description:
      - Directories in which the regular files named C(*.lvdiff.part) and C(*.lvdiff.part.sha1) (partial
        transfers of M(lvdiff.thin.transfer)), and C(*.lvdiff) with O(sweep_diffs=true), are removed. Only files
        directly inside, no recursion; symlinks are not followed, a directory given as a symlink fails its
        item; a missing directory is fine.
    type: list
    elements: path
    default: []
  sweep_diffs:
    description: Also remove C(*.lvdiff) files from the O(sweep) directories.
    type: bool
    default: false
seealso:
  - module: lvdiff.thin.receive
'''

EXAMPLES = r'''
- name: Remove a replica and the diff it was made from, and the leftovers of interrupted transfers
  lvdiff.thin.rotate:
    remove:
      - vg: vgbackup
        lv: web1-vg0-data-20260101T000000Z
        tag: lvdiff_rep_replica
    files: [/var/backups/web1/data-rep-20260101T000000Z.lvdiff]
    sweep: [/var/backups/web1]
'''

RETURN = r'''
removed:
  description: The volumes removed (in check mode, that would be), as C(VG/LV).
  returned: always
  type: list
  elements: str
  sample: [vgbackup/web1-vg0-data-20260101T000000Z]
files_removed:
  description: The files removed (in check mode, that would be), from O(files) and the O(sweep) directories.
  returned: always
  type: list
  elements: str
  sample: [/var/backups/web1/data-rep-20260101T000000Z.lvdiff]
remove:
  description: One result per item of O(remove), in the same order.
  returned: always
  type: list
  elements: dict
  contains:
    vg:
      description: Volume group.
      type: str
    lv:
      description: Thin volume.
      type: str
    removed:
      description: Whether it was (in check mode, would be) removed; V(false) for a volume that did not exist.
      type: bool
    failed:
      description: Whether the item failed; RV(remove[].msg) says why.
      type: bool
    msg:
      description: Why the item failed.
      type: str
      returned: when failed
      sample: "vgbackup/data not removed: it has no tag lvdiff_rep_replica"
files:
  description: One result per item of O(files), in the same order.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The file.
      type: str
    removed:
      description: Whether it was (in check mode, would be) removed.
      type: bool
    failed:
      description: Whether the item failed (not a regular file, or not removable); RV(files[].msg) says why.
      type: bool
    msg:
      description: Why the item failed.
      type: str
      returned: when failed
sweep:
  description: One result per directory of O(sweep), in the same order.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The directory.
      type: str
    removed:
      description: The files removed from it (in check mode, that would be).
      type: list
      elements: str
    failed:
      description: Whether the item failed; RV(sweep[].msg) says why.
      type: bool
    msg:
      description: Why the item failed.
      type: str
      returned: when failed
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lvdiff.thin.plugins.module_utils import _batch, _diffio
from ansible_collections.lvdiff.thin.plugins.module_utils._command import Runner
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError, run_module
from ansible_collections.lvdiff.thin.plugins.module_utils._lvm import Lvm, check_name, check_tag, thin_in

_PARTIALS = ('.lvdiff.part', '.lvdiff.part.sha1')  # what lvdiff.thin.transfer leaves when interrupted


def run(module):
    p = module.params
    check = module.check_mode
    for item in p['remove']:  # a bad name or tag fails the whole run, before anything is done
        check_name('volume group', item['vg'])
        check_name('volume', item['lv'])
        check_tag(item['tag'])
    volumes = _remove_volumes(Lvm(Runner(module)), p['remove'], check) if p['remove'] else []
    files = _batch.each(p['files'], lambda path: {'path': path, 'removed': _diffio.remove_file(path, check)})
    suffixes = _PARTIALS + (('.lvdiff',) if p['sweep_diffs'] else ())
    swept = _batch.each(p['sweep'], lambda d: {'path': d, 'removed': _diffio.remove_files_in(d, suffixes, check)})
    for path, result in zip(p['files'], files):
        result.setdefault('path', path)
    for path, result in zip(p['sweep'], swept):
        result.setdefault('path', path)
    removed = ['%s/%s' % (r['vg'], r['lv']) for r in volumes if r['removed']]
    files_removed = [r['path'] for r in files if r.get('removed')] + [
        path for r in swept for path in r.get('removed', [])]
    return {'changed': bool(removed or files_removed), 'removed': removed, 'files_removed': files_removed,
            'remove': volumes, 'files': files, 'sweep': swept}


def _remove_volumes(lvm, items, check_mode):
    """Each item checked against one lvs, then one lvremove per VG for its items; if that fails, one per
    item still there, so that each failure is its item's."""
    report = lvm.report(item['vg'] for item in items)
    results = []
    for item in items:
        result = {'vg': item['vg'], 'lv': item['lv'], 'removed': False, 'failed': False}
        try:
            result['removed'] = _removable(report, item)
        except LvdiffError as e:
            result.update(_batch.failure(e))
        results.append(result)
    for vg in sorted(set(r['vg'] for r in results if r['removed'])):
        mine = [r for r in results if r['vg'] == vg and r['removed']]
        names = sorted(set(r['lv'] for r in mine))
        if check_mode:
            continue
        try:
            lvm.remove(vg, *names)
            continue
        except LvdiffError:
            pass
        for r in mine:
            try:
                if r['lv'] in lvm.lvs(vg):  # the failed lvremove may have removed some
                    lvm.remove(vg, r['lv'])
            except LvdiffError as e:
                r.update(_batch.failure(e), removed=False)
    return results


def _removable(report, item):
    """Whether item's volume is there to remove (False: already gone); refuses one without its tag."""
    vg, lv = item['vg'], item['lv']
    if vg not in report:
        raise LvdiffError('volume group %s does not exist on this host' % vg)
    if lv not in report[vg]:
        return False
    volume = thin_in(report[vg], vg, lv)
    if item['tag'] not in volume.tags:
        raise LvdiffError('%s/%s not removed: it has no tag %s' % (vg, lv, item['tag']))
    return True


def main():
    module = AnsibleModule(
        argument_spec=dict(
            remove=dict(type='list', elements='dict', default=[], options=dict(
                vg=dict(type='str', required=True),
                lv=dict(type='str', required=True),
                tag=dict(type='str', required=True),
            )),
            files=dict(type='list', elements='path', default=[]),
            sweep=dict(type='list', elements='path', default=[]),
            sweep_diffs=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    run_module(module, run)


if __name__ == '__main__':
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: receive
short_description: Restore the diffs of many volumes as replicas, and finish replicas, in one run
version_added: 0.1.0
description:
  - The target side of the batched engine of the role C(lvdiff.thin.replicate). For each volume of O(volumes),
    first finishes the replicas listed in O(volumes[].finish), then restores its O(volumes[].steps) in order.
  - Each step is what M(lvdiff.thin.lvpatch) does, by the same code (its lock, temporary volume, verification
    and base checks), with the replica's final state always read-only, inactive and flagged activation skip
    (like a thin snapshot; activate it with C(lvchange -ay -K)), tagged with O(volumes[].tags) besides
    lvpatch's own C(lvdiff_origin:) and C(lvdiff_sha1:).
  - A replica that already exists and was made from this very diff (its C(lvdiff_sha1:) tag) is finished and
    left as it is otherwise; anything else of that name is refused.
  - One volume's failure is that volume's result (RV(volumes[].failed)); the other volumes are still done, and
    the module itself does not fail for it. A failed step skips the volume's later steps.
  - Reads C(lvs) once at the start for all volume groups, and once at the end (RV(lvs)).
author:
  - lvdiff.thin contributors (!UNKNOWN)
attributes:
  check_mode:
    details:
      - Reads and verifies every diff file and checks each target as M(lvdiff.thin.lvpatch) does; changes
        nothing. A step whose base is the replica of an earlier step of the same run is verified only.
extends_documentation_fragment:
  - lvdiff.thin.attributes
  - lvdiff.thin.attributes.THIN_TOOLS
  - lvdiff.thin.encryption
options:
  volumes:
    description: The volumes, each with its replicas to finish and its diffs to restore.
    type: list
    elements: dict
    required: true
    suboptions:
      vg:
        description: Volume group of the replicas.
        type: str
        required: true
      pool:
        description: Thin pool for full images (steps without O(volumes[].steps[].base)).
        type: str
      tags:
        description: LVM tags added to every replica made or finished.
        type: list
        elements: str
        default: []
      steps:
        description: Diffs to restore, in this order.
        type: list
        elements: dict
        default: []
        suboptions:
          src:
            description: Path of the diff file.
            type: path
            required: true
          name:
            description: Name of the replica to create.
            type: str
            required: true
          base:
            description:
              - Replica to patch from, for an incremental diff; omitted or null for a full image into
                O(volumes[].pool).
            type: str
      finish:
        description:
          - Existing replicas to finish, before the steps. Each gets the O(volumes[].tags) it lacks, read-only
            permission and the activation skip flag, and is deactivated.
        type: list
        elements: str
        default: []
  keep_diffs:
    description:
      - V(false) removes a step's diff file once its replica exists (if it is a regular file; a symlink is
        never followed nor removed). V(true) keeps them.
    type: bool
    default: false
  jobs:
    description: How many volumes are worked on at once (threads). A volume's own steps always run in order.
    type: int
    default: 1
notes:
  - SIGTERM or SIGHUP stops the run. The step in progress cleans up (its temporary volume is removed), the
    steps not started are not done, and the module fails.
seealso:
  - module: lvdiff.thin.lvpatch
  - module: lvdiff.thin.rotate
'''

EXAMPLES = r'''
- name: Restore the diffs that arrived, and finish a replica left writable
  lvdiff.thin.receive:
    volumes:
      - vg: vgbackup
        pool: pool
        tags: [lvdiff_rep_replica, "lvdiff_rep_of:Zr3XyL-nZ1d-0Hd2-Yi4n-kHo1-Ro9v-SPZ2kC"]
        finish: [web1-vg0-data-20260101T000000Z]
        steps:
          - src: /var/backups/web1/data-rep-20260102T000000Z.lvdiff
            name: web1-vg0-data-20260102T000000Z
            base: web1-vg0-data-20260101T000000Z
      - vg: vgbackup
        pool: pool
        steps:
          - src: /var/backups/web1/db-rep-20260102T000000Z.lvdiff
            name: web1-vg0-db-20260102T000000Z
  register: received
'''

RETURN = r'''
volumes:
  description: One result per volume of O(volumes), in the same order.
  returned: always
  type: list
  elements: dict
  contains:
    vg:
      description: The volume group.
      type: str
      sample: vgbackup
    changed:
      description: Whether anything was changed for this volume (in check mode, would be).
      type: bool
      sample: true
    failed:
      description: Whether this volume failed; RV(volumes[].msg) says why.
      type: bool
      sample: false
    msg:
      description: Why the volume failed.
      type: str
      returned: when failed
      sample: base volume vgbackup/web1-vg0-data-20260101T000000Z does not exist
    finished:
      description: The replicas of O(volumes[].finish) that were (in check mode, would be) changed.
      type: list
      elements: str
      sample: [web1-vg0-data-20260101T000000Z]
    steps:
      description: The steps done, in order (a failed step and those after it are not listed).
      type: list
      elements: dict
      contains:
        name:
          description: The replica.
          type: str
        base:
          description: The replica it was patched from, or null for a full image.
          type: str
        src:
          description: The diff file.
          type: str
        sha1:
          description: SHA-1 of the diff file (the replica's tag C(lvdiff_sha1:)).
          type: str
        changed:
          description: Whether the replica was made, or an existing one got tags or its final state.
          type: bool
        data_chunks:
          description: Chunks written (or held by the diff, for an existing replica and in check mode).
          type: int
        discard_chunks:
          description: Chunks discarded.
          type: int
        checks:
          description: Base checksums in the diff.
          type: int
        src_removed:
          description: Whether the diff file was removed (O(keep_diffs=false)).
          type: bool
lvs:
  description:
    - The volume groups' logical volumes after the run, read with one C(lvs), as lists of rows (for the
      rotation decision of the role). Volume groups that do not exist are left out.
  returned: always
  type: dict
  sample:
    vgbackup:
      - lv_name: web1-vg0-data-20260102T000000Z
        vg_name: vgbackup
        lv_uuid: 0Wn3Xc-L1sd-0Hd2-Yi4n-kHo1-Ro9v-SPZ2kD
        lv_attr: Vri---tz-k
        lv_tags: lvdiff_origin:jH9R2c-...,lvdiff_rep_of:Zr3XyL-...,lvdiff_rep_replica,lvdiff_sha1:3f78...
        lv_size: '10737418240'
        pool_lv: pool
        thin_id: '7'
'''

import threading

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lvdiff.thin.plugins.module_utils import _batch, _diffio, _restore
from ansible_collections.lvdiff.thin.plugins.module_utils._command import Runner
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError, Terminated, run_module
from ansible_collections.lvdiff.thin.plugins.module_utils._lvm import Lvm, check_name, check_tag, rows_of


def run(module):
    p = module.params
    volumes = [_checked(v) for v in p['volumes']]
    if p['jobs'] < 1:
        raise LvdiffError('jobs must be at least 1, not %d' % p['jobs'])
    key = _diffio.key_of(p)  # a bad key file fails the run before anything is done
    lvm = Lvm(Runner(module))
    report = lvm.report(v['vg'] for v in volumes)
    stop = threading.Event()
    # What each volume got done, kept when it fails later (_batch keeps only the failure's message).
    progress = [{'vg': v['vg'], 'changed': False, 'finished': [], 'steps': []} for v in volumes]

    # Replicas to deactivate: one lvchange per VG at the end (each is finished but for that already).
    later = dict((v['vg'], []) for v in volumes)

    def work(i):
        if stop.is_set():
            raise LvdiffError('not started: the run was terminated')
        _volume(lvm, report, volumes[i], progress[i], p['keep_diffs'], module.check_mode, stop,
                later[volumes[i]['vg']], key)
        return {}

    with _batch.stop_on_signal(stop):
        try:
            results = _batch.each(range(len(volumes)), work, p['jobs'])
        finally:  # a replica left active is finished otherwise; the next run deactivates it
            for msg in lvm.deactivate_all(later):
                module.warn(msg)
    if stop.is_set():
        raise Terminated('terminated by a signal; the steps in progress cleaned up, the others were not started')
    results = [dict(done, **r) for done, r in zip(progress, results)]
    return {'changed': any(r['changed'] for r in results), 'volumes': results,
            'lvs': rows_of(lvm.report(list(report)))}


def _checked(v):
    """The volume's names and tags checked before anything is done: a bad one fails the whole run."""
    check_name('volume group', v['vg'])
    if v['pool'] is not None:
        check_name('thin pool', v['pool'])
    for tag in v['tags']:
        check_tag(tag)
    for name in v['finish']:
        check_name('replica', name)
    for step in v['steps']:
        check_name('replica', step['name'])
        if step['base'] is not None:
            check_name('base replica', step['base'])
    return v


def _volume(lvm, report, v, done, keep_diffs, check_mode, stop, later, key=None):
    vg = v['vg']
    if vg not in report:
        raise LvdiffError('volume group %s does not exist on this host' % vg)
    lvs = report[vg]
    for name in v['finish']:
        if name not in lvs:
            raise LvdiffError('replica %s/%s to finish does not exist' % (vg, name))
        if _restore.finish(lvm, lvs[name], v['tags'], check_mode=check_mode, later=later, **_restore.REPLICA):
            done['finished'].append(name)
            done['changed'] = True
    made = set()
    for step in v['steps']:
        if stop.is_set():
            raise LvdiffError('step %s not started: the run was terminated' % step['name'])
        if check_mode and step['base'] in made:  # an earlier step's replica: nothing to check it against
            res = _restore.verify(step['src'], key)
        else:
            # The start's lvs is current for the first step, unless finishing changed some of it.
            fresh = lvs if not done['steps'] and not done['finished'] else None
            res = _restore.patch(lvm, step['src'], vg, step['name'], base=step['base'], pool=v['pool'],
                                 tags=v['tags'], check_mode=check_mode, lvs=fresh, refinish=True, later=later,
                                 key=key)
        if step['name'] not in lvs:  # check mode: the steps after it have no base to check against
            made.add(step['name'])
        removed = not keep_diffs and _remove_diff(step['src'], check_mode)
        done['steps'].append({'name': step['name'], 'base': step['base'], 'src': step['src'], 'sha1': res['sha1'],
                              'changed': res['changed'], 'data_chunks': res['data_chunks'],
                              'discard_chunks': res['discard_chunks'], 'checks': res['checks'],
                              'src_removed': removed})
        done['changed'] = done['changed'] or res['changed'] or removed


def _remove_diff(path, check_mode):
    """The diff file is done with: removed if it is a regular file; anything else (a symlink someone
    planted) is left alone, and the replica that exists is not made a failure for it."""
    try:
        return _diffio.remove_file(path, check_mode)
    except LvdiffError:
        return False


def main():
    module = AnsibleModule(
        argument_spec=dict(
            volumes=dict(type='list', elements='dict', required=True, options=dict(
                vg=dict(type='str', required=True),
                pool=dict(type='str'),
                tags=dict(type='list', elements='str', default=[]),
                steps=dict(type='list', elements='dict', default=[], options=dict(
                    src=dict(type='path', required=True),
                    name=dict(type='str', required=True),
                    base=dict(type='str'),
                )),
                finish=dict(type='list', elements='str', default=[]),
            )),
            keep_diffs=dict(type='bool', default=False),
            jobs=dict(type='int', default=1),
            **_diffio.ENCRYPTION_ARGS
        ),
        mutually_exclusive=_diffio.ENCRYPTION_EXCLUSIVE,
        supports_check_mode=True,
    )
    run_module(module, run)


if __name__ == '__main__':
    main()

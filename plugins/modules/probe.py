#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: probe
short_description: Tell which thin volumes changed since their newest replication snapshot
version_added: 0.1.0
description:
  - The first step of the role C(lvdiff.thin.replicate) on a source host, for all of its volumes at once.
    Reads the volume groups of all O(volumes) with one C(lvs), finds each volume's newest snapshot made by
    the role (tags C(lvdiff_rep_snap) and C(lvdiff_rep_of:<the volume's LV UUID>)), and counts the chunks that
    changed since it, from the pool's metadata only (C(thin_delta) on a reserved metadata snapshot).
  - One metadata snapshot per thin pool, reserved once for all volumes of that pool and always released.
  - Changes nothing. A volume that cannot be probed fails alone (RV(volumes[].failed)); the others are
    still probed, and the module itself does not fail for it.
author:
  - lvdiff.thin contributors (!UNKNOWN)
attributes:
  check_mode:
    details: Runs the same in check mode; it changes nothing either way.
extends_documentation_fragment:
  - lvdiff.thin.attributes
  - lvdiff.thin.attributes.THIN_TOOLS
options:
  volumes:
    description: The thin volumes to probe.
    type: list
    elements: dict
    required: true
    suboptions:
      vg:
        description: Volume group of the volume.
        type: str
        required: true
      lv:
        description: The thin volume itself (not one of its snapshots or replicas).
        type: str
        required: true
  snapshot_tag:
    description:
      - The LVM tag of the snapshots a volume's changes are counted since (with C(lvdiff_rep_of:<the volume's LV
        UUID>)). V(lvdiff_rep_snap) for the role C(lvdiff.thin.replicate), V(lvdiff_bak_snap) for backups.
    type: str
    default: lvdiff_rep_snap
    choices: [lvdiff_rep_snap, lvdiff_bak_snap]
  jobs:
    description:
      - How many C(thin_delta) runs at once, on the one metadata snapshot of a pool (each reads it only).
    type: int
    default: 2
seealso:
  - module: lvdiff.thin.send
  - module: lvdiff.thin.lvdiff
'''

EXAMPLES = r'''
- name: What changed on this host since the last replication
  lvdiff.thin.probe:
    volumes:
      - {vg: vg0, lv: data}
      - {vg: vg0, lv: www}
  register: probed

- name: Volumes worth a new snapshot
  ansible.builtin.debug:
    msg: "{{ probed.volumes | selectattr('changed_since') | map(attribute='lv') | list }}"
'''

RETURN = r'''
lvs:
  description:
    - The rows of the one C(lvs) run, per volume group (volume groups that do not exist are left out).
    - Each row has at least C(lv_name), C(vg_name), C(lv_uuid), C(lv_attr), C(lv_tags) (comma-separated),
      C(lv_size) (bytes, as text), C(pool_lv) and C(thin_id), as C(lvs --reportformat json) prints them.
  returned: always
  type: dict
  sample: {vg0: [{lv_name: data, vg_name: vg0, lv_uuid: Zr3XyL-nZ1d-0Hd2-Yi4n-kHo1-Ro9v-SPZ2kC,
                  lv_attr: Vwi-a-tz--, lv_tags: '', lv_size: '10737418240', pool_lv: pool, thin_id: '1'}]}
volumes:
  description: One result per item of O(volumes), in the same order.
  returned: always
  type: list
  elements: dict
  contains:
    vg:
      description: O(volumes[].vg).
      type: str
      returned: always
    lv:
      description: O(volumes[].lv).
      type: str
      returned: always
    uuid:
      description: LVM UUID of the volume.
      type: str
      returned: success
    size:
      description: Size of the volume in bytes.
      type: int
      returned: success
    since:
      description: Name of the volume's newest snapshot made by the role, or null if it has none.
      type: str
      returned: success
    since_size:
      description: Size of RV(volumes[].since) in bytes, or null.
      type: int
      returned: success
    data_chunks:
      description:
        - Chunks a diff against RV(volumes[].since) would carry (as RV(lvdiff.thin.lvdiff#module:data_chunks));
          without RV(volumes[].since), the chunks of a full image (the volume's mapped chunks).
      type: int
      returned: success
    estimated_size:
      description:
        - Size in bytes of that diff with lvdiff's defaults (format C(lvdiff), checksum level 2, no pairs), as
          lvdiff estimates it in check mode; read from the metadata only.
      type: int
      returned: success
    discard_chunks:
      description: Chunks such a diff would discard (0 for a full image).
      type: int
      returned: success
    chunk_size:
      description: The pool's chunk size in bytes, the unit of the chunk counts.
      type: int
      returned: success
    changed_since:
      description:
        - Whether the volume differs from RV(volumes[].since) (chunks to send or to discard, or another size).
        - V(true) when there is no RV(volumes[].since).
      type: bool
      returned: success
    changed:
      description: Always V(false).
      type: bool
      returned: always
    failed:
      description: Whether this volume could not be probed.
      type: bool
      returned: always
    msg:
      description: Why this volume could not be probed.
      type: str
      returned: failure
'''

import threading

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lvdiff.thin.plugins.module_utils import _batch, _diffio, _replicate, _thinmeta
from ansible_collections.lvdiff.thin.plugins.module_utils._backup import make_header
from ansible_collections.lvdiff.thin.plugins.module_utils._command import Runner
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import (
    LvdiffError, Terminated, require_lib, run_module)
from ansible_collections.lvdiff.thin.plugins.module_utils._lvm import Lvm, check_name, rows_of, thin_in
from ansible_collections.lvdiff.thin.plugins.module_utils._plan import Plan


# A volume made by the roles is never itself a volume to back up or replicate.
_ROLE_TAGS = (_replicate.TAG_SNAP, _replicate.TAG_REPLICA, _replicate.TAG_BAK_SNAP)


def _volume(report, rows, item, tag):
    """(result so far, volume LV, since LV or None) of one item, or LvdiffError."""
    vg, name = check_name('volume group', item['vg']), item['lv']
    if vg not in report:
        raise LvdiffError('volume group %s does not exist on this host' % vg)
    lvs = report[vg]
    lv = thin_in(lvs, vg, name)
    if any(t in lv.tags for t in _ROLE_TAGS):
        raise LvdiffError('%s/%s is a snapshot or replica made by a role of lvdiff.thin; give the volume itself'
                          % (vg, name))
    snaps = _replicate.snapshots_of(rows[vg], lv.uuid, tag)
    since = lvs[snaps[0]['name']] if snaps else None
    if since is not None and (since.pool != lv.pool or since.thin_id is None):
        raise LvdiffError('snapshot %s/%s of %s is not a thin volume of pool %s' % (vg, since.name, name, lv.pool))
    pool = lvs.get(lv.pool)
    if pool is None or not pool.is_pool:
        raise LvdiffError('thin pool %s/%s of %s not found' % (vg, lv.pool, name))
    result = {'uuid': lv.uuid, 'size': lv.size, 'since': since and since.name,
              'since_size': since and since.size, 'chunk_size': pool.chunk_size,
              'data_chunks': None, 'discard_chunks': None, 'estimated_size': None, 'changed_since': True}
    return result, lv, since, pool


# What estimated_size assumes: lvdiff's defaults.
_DEFAULTS = {'checksum_level': 2, 'pairs': {}, 'format': 'lvdiff'}


def _count(runner, tmeta, result, lv, since, pool):
    """Chunks a diff of lv against since (or a full image) would carry and discard, and its size: the very
    numbers lvdiff reports in check mode."""
    with Plan(result['chunk_size'], lv.size, since.size if since else None) as plan:
        if since is not None:
            plan.add_delta(_thinmeta.thin_delta(runner, tmeta, since.thin_id, lv.thin_id))
        else:
            plan.add_mapped(_thinmeta.thin_mappings(runner, tmeta, lv.thin_id))
        result.update(data_chunks=plan.data_chunks, discard_chunks=plan.discard_chunks,
                      estimated_size=_diffio.estimate_size(make_header(_DEFAULTS, lv, since, pool), plan),
                      changed_since=since is None or bool(plan.data_chunks or plan.discard_chunks)
                      or lv.size != since.size)


def _each(items, work):
    """work(item) for each item; an item whose work raises gets _batch.failure instead."""
    for item in items:
        try:
            work(item)
        except Exception as e:  # this volume's failure only
            item['result'] = _batch.failure(e)


def _count_pools(runner, items, jobs):
    """_count for each item, jobs at once, on one metadata snapshot per pool. A termination stops the whole
    run, once the snapshots are released."""
    pools = {}  # one metadata snapshot per pool, for all of its volumes
    for item in items:
        pools.setdefault((item['vg'], item['lv_'].pool), []).append(item)
    stop = threading.Event()
    with _batch.stop_on_signal(stop):
        for (vg, pool), group in sorted(pools.items()):
            try:
                with _thinmeta.MetadataSnapshot(runner, vg, pool) as meta:
                    def count(item):
                        if stop.is_set():
                            raise LvdiffError('not done: the run was terminated')
                        _count(runner, meta.tmeta, item['result'], item['lv_'], item['since_'], item['pool_'])
                        return {}
                    for item, r in zip(group, _batch.each(group, count, jobs)):
                        if r['failed']:
                            item['result'] = r
            except Terminated:
                raise
            except Exception as e:  # reserving (or releasing) failed: every volume of the pool
                for item in group:
                    item['result'] = _batch.failure(e)
    if stop.is_set():  # a termination stops the whole run; the metadata snapshots were released
        raise Terminated('terminated by a signal; the metadata snapshots were released')


def run(module):
    items = [{'vg': v['vg'], 'lv': v['lv']} for v in module.params['volumes']]
    if module.params['jobs'] < 1:
        raise LvdiffError('jobs must be at least 1, not %d' % module.params['jobs'])
    runner = Runner(module)
    _thinmeta.tools_version(runner)
    vgs = []
    for item in items:
        try:
            vgs.append(check_name('volume group', item['vg']))
        except LvdiffError:
            pass  # that volume fails below, alone
    report = Lvm(runner).report(vgs)
    rows = rows_of(report)
    parsed = dict((vg, _replicate.rows(r)) for vg, r in rows.items())

    tag = module.params['snapshot_tag']

    def prepare(item):
        item['result'], item['lv_'], item['since_'], item['pool_'] = _volume(report, parsed, item, tag)
    _each(items, prepare)

    _count_pools(runner, [item for item in items if 'failed' not in item['result']], module.params['jobs'])

    volumes = []
    for item in items:
        result = dict({'failed': False}, **item['result'])
        volumes.append(dict(result, vg=item['vg'], lv=item['lv'], changed=False))
    return {'changed': False, 'lvs': rows, 'volumes': volumes}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            volumes=dict(type='list', elements='dict', required=True, options=dict(
                vg=dict(type='str', required=True),
                lv=dict(type='str', required=True),
            )),
            snapshot_tag=dict(type='str', default=_replicate.TAG_SNAP,
                              choices=[_replicate.TAG_SNAP, _replicate.TAG_BAK_SNAP]),
            jobs=dict(type='int', default=2),
        ),
        supports_check_mode=True,
    )
    require_lib(module, 'lxml', _thinmeta.HAS_LXML, _thinmeta.LXML_IMPORT_ERROR)
    run_module(module, run)


if __name__ == '__main__':
    main()

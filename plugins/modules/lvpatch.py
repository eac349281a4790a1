#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: lvpatch
short_description: Restore a diff file as a new LVM thin volume
version_added: 0.1.0
description:
  - Creates thin volume O(name) from diff file O(src) (written by M(lvdiff.thin.lvdiff), or by the Go C(lvdiff)
    in its HYPERLAYER/1.0 format).
  - An incremental diff is applied to a new thin snapshot of O(base), which must hold the state the diff
    was made against; a full image becomes a new thin volume in O(pool).
  - Refuses, before changing anything, a chunk-size mismatch between the target pool and the diff, a missing
    base, a base whose identity or content does not match the diff, a corrupt or truncated file.
  - Works on a temporary volume; only a complete, verified result is renamed to O(name) and tagged with the
    diff's identity (C(lvdiff_origin:<source LV UUID>), C(lvdiff_sha1:<SHA-1 of the diff>)). On any failure,
    including the pool running out of space or SIGTERM, the temporary volume is removed.
  - The new volume is by default read-only, inactive and flagged activation skip, like a thin snapshot. It is
    the base of the next restore of its chain, and a base that has been written to no longer matches the next
    diff. Set O(permission=rw) and O(activate=true) for a volume to use at once, or take a writable thin
    snapshot of it (C(lvcreate -s -kn -n NEW VG/NAME)).
  - Runs for the same O(vg) and O(name) exclude each other; a second one fails at once with
    C(another lvpatch is restoring VG/NAME) and changes nothing. The lock is a file in C(/run/lvdiff.thin),
    a directory that must belong to root (the user running the module) with mode 0700.
author:
  - lvdiff.thin contributors (!UNKNOWN)
extends_documentation_fragment:
  - lvdiff.thin.attributes
  - lvdiff.thin.attributes.THIN_TOOLS
attributes:
  check_mode:
    support: full
    details:
      - Reads and verifies the whole file and checks the target; changes nothing, not even the activation of
        O(base). The base's content is checked only when O(base) is active (RV(base_checked)).
  diff_mode:
    support: none
options:
  src:
    description: Path of the diff file on the managed host.
    type: path
    required: true
  vg:
    description: Volume group to create the volume in.
    type: str
    required: true
  base:
    description:
      - Thin volume holding the diff's base state. Required for an incremental diff; not allowed for a full image.
    type: str
  pool:
    description:
      - Thin pool for a full image. Ignored for an incremental, which lands in the pool of O(base).
    type: str
  name:
    description:
      - Name of the new thin volume. Default is the source volume's name recorded in the diff.
    type: str
  base_check:
    description:
      - Verify the diff's base checksums against O(base) before writing. V(false) is the Go tool's
        C(--no-base-check); the identity check on the base's C(lvdiff_origin) tag still applies.
    type: bool
    default: true
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
notes:
  - Idempotence. If O(name) exists and carries the tag C(lvdiff_sha1:) of this very file, nothing is done
    (RV(ignore:changed=false)), and O(permission) and O(activate) are not applied to it; if O(name) exists
    otherwise, the module fails rather than overwrite it.
  - LVM accepts at most 125 characters in C(VG/NAME), and device-mapper at most 127 in C(VG-NAME) with each
    C(-) doubled. The name of the temporary volume, O(name) plus C(-lvpatch-tmp), must fit both; a longer
    O(name) is refused before anything is done.
  - The target pool needs free space for the diff's data; this is checked before starting.
seealso:
  - module: lvdiff.thin.lvdiff
  - module: lvdiff.thin.lvdiff_info
'''

EXAMPLES = r'''
- name: Restore yesterday's incremental on top of the replica of its base
  lvdiff.thin.lvpatch:
    src: /var/backups/data-snap-2.lvdiff
    vg: vgbackup
    base: data-snap-1
    name: data-snap-2

- name: Restore a full image into a pool
  lvdiff.thin.lvpatch:
    src: /var/backups/data-snap-1.full.lvdiff
    vg: vgbackup
    pool: pool

- name: Restore the last diff of a chain as a volume to use at once (no later diff can be applied onto it)
  lvdiff.thin.lvpatch:
    src: /var/backups/data-snap-3.lvdiff
    vg: vgrestore
    base: data-snap-2
    name: data
    permission: rw
    activate: true

- name: Apply a file made by the Go lvdiff, without its base check
  lvdiff.thin.lvpatch:
    src: /tmp/sp001_vol0.diff
    vg: vg001
    base: vol0
    base_check: false
'''

RETURN = r'''
lv:
  description: Name of the volume created (or found).
  returned: always
  type: str
  sample: data-snap-2
path:
  description: Device path of the volume (it exists only while the volume is active).
  returned: always
  type: str
  sample: /dev/vgbackup/data-snap-2
sha1:
  description: SHA-1 of the whole diff file; the volume carries it in its tag C(lvdiff_sha1:).
  returned: always
  type: str
  sample: 3f786850e387550fdab836ed7e6dc881de23001b
permission:
  description:
    - Permission of the volume after the run, V(r) or V(rw). In check mode, the one it would get.
  returned: always
  type: str
  sample: r
active:
  description:
    - Whether the volume is active after the run. In check mode, whether it would be.
  returned: always
  type: bool
  sample: false
checks:
  description: Number of base checksums in the diff (0 for a full image).
  returned: always
  type: int
  sample: 160
base_checked:
  description:
    - Whether the base's content was compared with the diff's base checksums. V(false) for a full image,
      with O(base_check=false), for an existing volume left alone, and in check mode when O(base) is inactive.
  returned: always
  type: bool
  sample: true
format:
  description: Format of the diff file, V(lvdiff) or V(hyperlayer).
  returned: always
  type: str
  sample: lvdiff
data_chunks:
  description:
    - Chunks written from the diff; in check mode, or for an existing volume left alone, the chunks the diff holds.
  returned: always
  type: int
  sample: 3200
discard_chunks:
  description: Chunks discarded (unmapped) as the diff says.
  returned: always
  type: int
  sample: 12
volume_size:
  description: Size of the restored volume in bytes.
  returned: always
  type: int
  sample: 10737418240
pairs:
  description: The user pairs in the diff's header (O(lvdiff.thin.lvdiff#module:pairs) of M(lvdiff.thin.lvdiff), or the
    key/value lines of a HyperLayer header).
  returned: always
  type: dict
  sample: {host: web1}
origin_uuid:
  description: LVM UUID of the source volume the diff was made from.
  returned: always
  type: str
  sample: Zr3XyL-nZ1d-0Hd2-Yi4n-kHo1-Ro9v-SPZ2kC
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _lock
from ansible_collections.lvdiff.thin.plugins.module_utils._command import Runner, wait_for_children
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import (
    BaseMismatchError, LvdiffError, run_module)
from ansible_collections.lvdiff.thin.plugins.module_utils._lvm import (
    TAG_DIFF, TAG_ORIGIN, TMP_SUFFIX, Lvm, check_name, check_name_length)
from ansible_collections.lvdiff.thin.plugins.module_utils._plan import ceil_div

# Locks of runs in progress, one file per VG and name, in _lock's private directory.
LOCK_DIR = _lock.LOCK_DIR


def run(module):
    p = module.params
    lvm = Lvm(Runner(module))
    # One open file for the whole run: its header is parsed once, and what is checked is what is applied.
    with _diffio.open_diff(p['src']) as reader:
        header = reader.header
        if not (p['name'] or header.volume['name']):
            raise LvdiffError('the diff records no volume name: give name, the name of the new volume')
        name = check_name('volume', p['name'] or header.volume['name'])
        check_name('volume group', p['vg'])
        check_name_length(p['vg'], name + TMP_SUFFIX, 'temporary volume')
        if module.check_mode:  # takes no lock: the lock directory would be a change
            return _run(module, lvm, reader, name)
        with _restore_lock(p['vg'], name):
            return _run(module, lvm, reader, name)


def _run(module, lvm, reader, name):
    p = module.params
    header = reader.header
    lvs = lvm.lvs(p['vg'])
    result = {'changed': True, 'lv': name, 'path': '/dev/%s/%s' % (p['vg'], name), 'format': header.format,
              'volume_size': header.volume['size'], 'pairs': header.pairs, 'origin_uuid': header.volume['uuid'],
              'permission': p['permission'], 'active': p['activate'], 'base_checked': False}

    if name in lvs:
        # Only this very diff may already have made it; anything else is someone's data.
        summary = _diffio.verify(reader)
        existing = lvs[name]
        made_by = existing.tag_value(TAG_DIFF)
        if made_by != summary['sha1']:
            raise LvdiffError('volume %s/%s already exists and was not made from this diff (%s); '
                              'choose another name or remove it'
                              % (p['vg'], name, 'it has no tag %s' % TAG_DIFF if made_by is None
                                 else 'its tag is %s%s' % (TAG_DIFF, made_by)))
        # Left as it is: permission and activation are for the volume this module makes.
        result.update(changed=False, path=existing.path, sha1=summary['sha1'],
                      permission='r' if existing.read_only else 'rw', active=existing.active,
                      **_counts(summary, header))
        return result

    if header.incremental:
        if not p['base']:
            raise LvdiffError('this diff is incremental: give base, the volume holding the state of %s (uuid %s)'
                              % (header.base.get('name') or 'its base', header.base['uuid']))
        base = lvm.thin(p['vg'], p['base'], 'base volume')
        origin = base.tag_value(TAG_ORIGIN)
        if origin is not None and origin != header.base['uuid']:
            raise BaseMismatchError('base %s/%s is a replica of volume %s, but this diff was made against volume '
                                    '%s (%s): wrong base' % (p['vg'], base.name, origin, header.base['uuid'],
                                                             header.base.get('name') or '?'))
        pool = lvm.pool_of(base)
    else:
        if p['base']:
            raise LvdiffError('this diff is a full image: it needs pool, not base')
        if not p['pool']:
            raise LvdiffError('this diff is a full image: give pool, the thin pool to create it in')
        base = None
        pool = lvm.pool(p['vg'], p['pool'])
    _diffio.check_target(header, pool.chunk_size)
    if header.volume['size'] % pool.extent_size:
        raise LvdiffError('the volume size %d is not a multiple of volume group %s\'s extent size %d'
                          % (header.volume['size'], p['vg'], pool.extent_size))
    needed = os.path.getsize(p['src'])
    if pool.free_bytes < needed:
        raise LvdiffError('thin pool %s/%s has %d bytes free, the diff may need up to %d; extend the pool'
                          % (p['vg'], pool.name, pool.free_bytes, needed))

    if module.check_mode:
        summary = _diffio.verify(reader)
        result.update(sha1=summary['sha1'], **_counts(summary, header))
        # Check mode activates nothing (as lvdiff): an inactive base cannot be read.
        if base is not None and p['base_check'] and base.active:
            _check_base_only(p['src'], base)
            result['base_checked'] = True
        return result

    tmp = name + TMP_SUFFIX
    if tmp in lvs:  # left by a run killed with SIGKILL (we hold the lock): never anyone else's, by its suffix
        lvm.remove(p['vg'], tmp)
    may_exist = True  # from here on, even if a signal interrupts the lvcreate that makes it
    try:
        if base is not None:
            lvm.snapshot(p['vg'], base.name, tmp)
        else:
            lvm.create_thin(p['vg'], pool.name, tmp, header.volume['size'])
        made = lvm.lvs(p['vg'])[tmp]
        if not made.active:
            lvm.activate(made)
        if header.volume['size'] > made.size:
            lvm.resize(p['vg'], tmp, header.volume['size'])
        summary = _apply(reader, made.path, p['base_check'], pool.chunk_size)
        if header.volume['size'] < made.size:
            lvm.resize(p['vg'], tmp, header.volume['size'])
        lvm.tag(p['vg'], tmp, add=[TAG_ORIGIN + header.volume['uuid'], TAG_DIFF + summary['sha1']],
                remove=[t for t in made.tags if t.startswith((TAG_ORIGIN, TAG_DIFF))])
        _finish(lvm, made, p['permission'], p['activate'])
        lvm.rename(p['vg'], tmp, name)
        may_exist = False
    finally:
        if may_exist:
            wait_for_children()
            if tmp in lvm.lvs(p['vg']):
                lvm.remove(p['vg'], tmp)
    result.update(sha1=summary['sha1'], base_checked=base is not None and p['base_check'],
                  **_counts(summary, header))
    return result


def _finish(lvm, tmp, permission, activate):
    """Give the temporary volume (active, writable, without activation skip, as made) its final state
    before it gets its name: by default read-only and inactive, like a thin snapshot."""
    argv = ['lvchange']
    if permission == 'r':
        argv += ['--permission', 'r']
    if not activate:
        argv += ['--setactivationskip', 'y']
    if len(argv) > 1:
        lvm.runner.run(argv + ['%s/%s' % (tmp.vg, tmp.name)])
    if not activate:
        lvm.deactivate(tmp)


def _restore_lock(vg, name):
    """Hold the lock of vg/name for the block; fail at once if another run holds it."""
    return _lock.held('lvpatch@%s@%s.lock' % (vg, name), lock_dir=LOCK_DIR,  # '@' is in no LVM name
                      busy='another lvpatch is restoring %s/%s; wait for it to finish, then run again'
                           % (vg, name))


def _apply(reader, device, base_check, chunk_size):
    try:
        fd = os.open(device, os.O_RDWR)
    except OSError as e:
        raise LvdiffError('cannot open %s: %s' % (device, e.strerror))
    try:
        # No verify pass first: a corrupt or truncated file is found while writing the temporary volume,
        # which is then removed.
        summary = _diffio.apply(reader, fd, base_check=base_check, target_chunk_size=chunk_size)
        os.fsync(fd)
    except OSError as e:
        raise LvdiffError('writing %s failed: %s (the thin pool may be full); nothing was kept' % (device, e))
    finally:
        os.close(fd)
    return summary


def _check_base_only(src, base):
    """Check mode: run the diff's base checks against the active base, read-only."""
    try:
        fd = os.open(base.path, os.O_RDONLY)
    except OSError as e:
        raise LvdiffError('cannot open base %s: %s' % (base.path, e.strerror))
    try:
        with _diffio.open_diff(src) as reader:
            _diffio.verify_base(reader, fd)
    finally:
        os.close(fd)


def _counts(summary, header):
    cs = header.chunk_size
    return {'data_chunks': ceil_div(summary['data_bytes'], cs),
            'discard_chunks': ceil_div(summary['discard_bytes'], cs),
            'checks': summary['records'].get('check', 0)}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type='path', required=True),
            vg=dict(type='str', required=True),
            base=dict(type='str'),
            pool=dict(type='str'),
            name=dict(type='str'),
            base_check=dict(type='bool', default=True),
            permission=dict(type='str', choices=['r', 'rw'], default='r'),
            activate=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    run_module(module, run)


if __name__ == '__main__':
    main()

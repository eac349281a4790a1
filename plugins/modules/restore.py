#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: restore
short_description: Restore a thin volume as it was at a point in time, from a backup repository
version_added: 0.1.0
description:
  - Creates thin volume O(name) in O(pool) from the backups of one volume in a backup repository, a directory
    tree of diff files C(<repository>/<host>/<vg>/<lv>/<created as YYYYmmddTHHMMSSZ>-<full|incr>.lvdiff).
  - Finds the backup that O(point) (or O(pair)) names, and its chain back to a full image, by the files'
    headers (each incremental's base is the backup whose volume UUID its header names), not by their names.
  - Reads and verifies every file of the chain before anything is created, refusing a missing, corrupt,
    truncated or foreign file, a broken link, a file that is not the one the scan found (replaced or changed
    meanwhile), a symlink anywhere below O(repository), or a chunk-size mismatch with O(pool).
  - Applies the full image and then each incremental, in order, to one temporary volume; each incremental's base
    checks run against the state the files before it left. Only a complete result is renamed to O(name), tagged
    C(lvdiff_origin:<UUID of the newest backup's volume>) and C(lvdiff_sha1:<SHA-1 of the newest backup file>).
    On any failure, including the pool running out of space or SIGTERM, the temporary volume is removed.
  - The new volume is by default read-only, inactive and flagged activation skip, like a replica made by
    M(lvdiff.thin.lvpatch). Set O(permission=rw) and O(activate=true) for a volume to use at once.
  - Runs for the same O(vg) and O(name), and M(lvdiff.thin.lvpatch) runs for them, exclude each other; a second
    one fails at once and changes nothing. The lock is a file in C(/run/lvdiff.thin).
author:
  - lvdiff.thin contributors (!UNKNOWN)
attributes:
  check_mode:
    details:
      - Finds and verifies the whole chain (every file is read) and checks the target; creates nothing.
        RV(chain) and RV(bytes) are what a run would apply.
extends_documentation_fragment:
  - lvdiff.thin.attributes
  - lvdiff.thin.new_volume
  - lvdiff.thin.attributes.THIN_TOOLS
  - lvdiff.thin.progress
  - lvdiff.thin.encryption
options:
  repository:
    description:
      - The root of the backup repository, a directory on the managed host (for example a mounted file server
        share). It may itself be a symlink; nothing below it is followed through a symlink.
    type: path
    required: true
  host:
    description: The host directory in the repository, the host whose volume was backed up.
    type: str
    required: true
  vg_from:
    description: The volume group directory in the repository. Default is O(vg).
    type: str
  lv:
    description: The logical volume directory in the repository, the volume whose backups to restore.
    type: str
    required: true
  point:
    description:
      - What to restore. V(latest) (the default, unless O(pair) is given), the newest backup.
      - A time C(YYYY-mm-ddTHH:MM:SSZ) (UTC), the newest backup created at or before it.
      - A backup file name (C(20261201T030000Z-incr.lvdiff)) or its id (C(web1/vg0/data/20261201T030000Z-incr.lvdiff),
        its path relative to O(repository)).
      - Mutually exclusive with O(pair).
    type: str
  pair:
    description:
      - What to restore, by a header pair (O(lvdiff.thin.lvdiff#module:pairs)), a dictionary of one key and its
        value; the newest backup whose header has that pair. The value is compared as text.
      - Mutually exclusive with O(point).
    type: dict
  vg:
    description: Volume group to create the volume in.
    type: str
    required: true
  name:
    description: Name of the new thin volume. Default is O(lv).
    type: str
  pool:
    description: Thin pool of O(vg) to create the volume in. Its chunk size must be the backups'.
    type: str
    required: true
  progress_file:
    description:
      - Where to write the progress of the run (see the notes), with phase C(verifying) and then C(applying), each
        the bytes of the chain's files read of their sum.
      - Default is to write none.
    type: path
notes:
  - Idempotence. If O(name) exists and carries the tags C(lvdiff_sha1:) and C(lvdiff_origin:) of the newest backup
    of the chain, only the O(tags) it lacks are added (RV(ignore:changed=false) when it has them all), and
    O(permission) and O(activate) are not applied to it; if O(name) exists otherwise, the module fails rather
    than overwrite it. The chain is read and verified on every run, an existing volume's too.
  - The repository is untrusted. Files are opened below O(repository) without following symlinks, a directory
    may hold at most 100000 entries, and the files of the chain are proved to be the ones found (inode, size,
    header, SHA-1) when they are applied.
  - The thin pool needs free space for the restored data, at most the size of the largest volume of the chain;
    this is checked before starting.
  - LVM accepts at most 125 characters in C(VG/NAME); O(name) plus C(-lvpatch-tmp), the temporary volume,
    must fit.
seealso:
  - module: lvdiff.thin.lvpatch
  - module: lvdiff.thin.lvdiff
'''

EXAMPLES = r'''
- name: Restore web1's vg0/data as it is in its newest backup, as a volume to use at once
  lvdiff.thin.restore:
    repository: /srv/backups
    host: web1
    lv: data
    vg: vg0
    pool: pool
    name: data-restored
    permission: rw
    activate: true

- name: Restore it as it was on the morning of 3 December 2026, into another volume group
  lvdiff.thin.restore:
    repository: /srv/backups
    host: web1
    vg_from: vg0
    lv: data
    point: '2026-12-03T08:00:00Z'
    vg: vgrestore
    pool: pool
    name: data-20261203

- name: Restore the backup labelled before-upgrade
  lvdiff.thin.restore:
    repository: /srv/backups
    host: web1
    lv: data
    pair:
      label: before-upgrade
    vg: vg0
    pool: pool
    name: data-before-upgrade
    tags: [restored]

- name: Restore one backup file's state
  lvdiff.thin.restore:
    repository: /srv/backups
    host: web1
    lv: data
    point: 20261202T030000Z-incr.lvdiff
    vg: vg0
    pool: pool
    name: data-20261202
'''

RETURN = r'''
name:
  description: Name of the volume created (or found).
  returned: always
  type: str
  sample: data-restored
path:
  description: Device path of the volume (it exists only while the volume is active).
  returned: always
  type: str
  sample: /dev/vg0/data-restored
chain:
  description: The backups applied, in order, the full image first (in check mode, those a run would apply).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The file's path relative to O(repository).
      type: str
      sample: web1/vg0/data/20261202T030000Z-incr.lvdiff
    created:
      description: When the backup was made (UTC), from its header (a HyperLayer file's from its name).
      type: str
      sample: '2026-12-02T03:00:00Z'
    full:
      description: Whether the file is a full image (the first one is, the others are incrementals).
      type: bool
      sample: false
    file_size:
      description: Size of the file in bytes.
      type: int
      sample: 1048576
  sample:
    - id: web1/vg0/data/20261201T030000Z-full.lvdiff
      created: '2026-12-01T03:00:00Z'
      full: true
      file_size: 1073741824
    - id: web1/vg0/data/20261202T030000Z-incr.lvdiff
      created: '2026-12-02T03:00:00Z'
      full: false
      file_size: 1048576
bytes:
  description: Total size of the chain's files in bytes, all read and verified.
  returned: always
  type: int
  sample: 1074790400
sha1:
  description: SHA-1 of the newest file of the chain; the volume carries it in its tag C(lvdiff_sha1:).
  returned: always
  type: str
  sample: 3f786850e387550fdab836ed7e6dc881de23001b
origin_uuid:
  description:
    - LVM UUID of the source volume the newest backup was made from; the volume carries it in its tag
      C(lvdiff_origin:).
  returned: always
  type: str
  sample: Zr3XyL-nZ1d-0Hd2-Yi4n-kHo1-Ro9v-SPZ2kC
volume_size:
  description: Size of the restored volume in bytes (the newest backup's volume size).
  returned: always
  type: int
  sample: 10737418240
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
data_chunks:
  description: Chunks written, summed over the chain's files (for an existing volume left alone, those they hold).
  returned: always
  type: int
  sample: 3200
discard_chunks:
  description: Chunks discarded (unmapped), summed over the chain's files.
  returned: always
  type: int
  sample: 12
checks:
  description: Base checksums verified against the state the files before left, summed over the chain's files.
  returned: always
  type: int
  sample: 160
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _progress, _repository, _restore
from ansible_collections.lvdiff.thin.plugins.module_utils._command import Runner
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError, run_module
from ansible_collections.lvdiff.thin.plugins.module_utils._lvm import Lvm

# The files a scan did not take that a failure names: enough to see why a chain breaks, bounded.
SHOWN_NOT_TAKEN = 5


def run(module):
    p = module.params
    key = _diffio.key_of(p)  # a bad key file refused before the repository is read
    point = _point(p['point'], p['pair'])
    root = p['repository']
    place = (p['host'], p['vg_from'] or p['vg'], p['lv'])
    found = _repository.scan(root, *place)
    backups = found['volumes'].get(place)
    if not backups:
        raise LvdiffError('no backup of %s in the repository %s%s' % ('/'.join(place), root, _not_taken(found)))
    try:
        chain = _repository.resolve(backups, point)
    except LvdiffError as e:
        raise LvdiffError(e.msg + _not_taken(found))
    with _progress.Progress(_progress.path_of(p['progress_file'], check_mode=module.check_mode), 'verifying',
                            None) as progress:
        return _restore.patch_chain(Lvm(Runner(module)), root, chain, p['vg'], p['name'] or p['lv'], p['pool'],
                                    tags=p['tags'], check_mode=module.check_mode, progress=progress,
                                    final={'permission': p['permission'], 'activate': p['activate']}, key=key)


def _point(point, pair):
    """_repository.resolve's point of the options."""
    if pair is None:
        return point or 'latest'
    if len(pair) != 1:
        raise LvdiffError('pair takes one KEY: VALUE, the header pair of the backup to restore; it has %d'
                          % len(pair))
    (key, value), = pair.items()
    if isinstance(value, (dict, list)):
        raise LvdiffError('pair must map text to text; %r holds a %s' % (key, type(value).__name__))
    # As lvdiff writes its pairs option into a header: text, None as ''.
    return {'pair': (str(key), '' if value is None else str(value))}


def _not_taken(found):
    """What the scan left out (misplaced or unreadable files), for a failure: a missing link may be one of them."""
    left = found['misplaced'] + found['unreadable']
    if not left:
        return ''
    shown = '; '.join('%s (%s)' % item for item in sorted(left)[:SHOWN_NOT_TAKEN])
    more = len(left) - SHOWN_NOT_TAKEN
    return '; not taken from the repository: %s%s' % (shown, ' and %d more' % more if more > 0 else '')


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repository=dict(type='path', required=True),
            host=dict(type='str', required=True),
            vg_from=dict(type='str'),
            lv=dict(type='str', required=True),
            point=dict(type='str'),
            pair=dict(type='dict'),
            vg=dict(type='str', required=True),
            name=dict(type='str'),
            pool=dict(type='str', required=True),
            permission=dict(type='str', choices=['r', 'rw'], default='r'),
            activate=dict(type='bool', default=False),
            tags=dict(type='list', elements='str', default=[]),
            progress_file=dict(type='path'),
            **_diffio.ENCRYPTION_ARGS
        ),
        mutually_exclusive=[('point', 'pair')] + _diffio.ENCRYPTION_EXCLUSIVE,
        supports_check_mode=True,
    )
    run_module(module, run)


if __name__ == '__main__':
    main()

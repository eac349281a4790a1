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
attributes:
  check_mode:
    details:
      - Reads and verifies the whole file and checks the target; changes nothing, not even the activation of
        O(base). The base's content is checked only when O(base) is active (RV(base_checked)).
extends_documentation_fragment:
  - lvdiff.thin.attributes
  - lvdiff.thin.new_volume
  - lvdiff.thin.attributes.THIN_TOOLS
  - lvdiff.thin.progress
  - lvdiff.thin.encryption
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
  progress_file:
    description:
      - Where to write the progress of the run (see the notes), with phase C(applying), the bytes of O(src) read
        and applied of its size.
      - Default is to write none.
    type: path
notes:
  - Idempotence. If O(name) exists and carries the tag C(lvdiff_sha1:) of this very file, only the O(tags) it
    lacks are added (RV(ignore:changed=false) when it has them all), and O(permission) and O(activate) are not
    applied to it; if O(name) exists otherwise, the module fails rather than overwrite it.
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
    tags: [backup_of_web1]

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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _progress, _restore
from ansible_collections.lvdiff.thin.plugins.module_utils._command import Runner
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import run_module
from ansible_collections.lvdiff.thin.plugins.module_utils._lvm import Lvm


def run(module):
    p = module.params
    with _progress.Progress(_progress.path_of(p['progress_file'], check_mode=module.check_mode), 'applying',
                            None) as progress:
        return _restore.patch(Lvm(Runner(module)), p['src'], p['vg'], name=p['name'], base=p['base'],
                              pool=p['pool'], base_check=p['base_check'], tags=p['tags'],
                              check_mode=module.check_mode, progress=progress,
                              final={'permission': p['permission'], 'activate': p['activate']},
                              key=_diffio.key_of(p))


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
            tags=dict(type='list', elements='str', default=[]),
            progress_file=dict(type='path'),
            **_diffio.ENCRYPTION_ARGS
        ),
        mutually_exclusive=_diffio.ENCRYPTION_EXCLUSIVE,
        supports_check_mode=True,
    )
    run_module(module, run)


if __name__ == '__main__':
    main()

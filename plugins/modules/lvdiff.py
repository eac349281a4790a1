#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: lvdiff
short_description: Write the changes of an LVM thin volume since a base volume to a diff file
version_added: 0.1.0
description:
  - Compares thin volume O(lv) with thin volume O(base) in the same pool, using the pool's metadata
    (C(thin_delta) on a reserved metadata snapshot), and writes the chunks that differ to O(dest),
    namely changed data, discarded ranges, and checksums of the base so that the receiver can prove it
    patches the right base.
  - Without O(base), writes a full image of the chunks mapped in O(lv) (C(thin_dump)).
  - Reads data only from the named thin volumes while a metadata snapshot pins the pool's mappings.
    Inactive or activation-skip volumes are activated for the run and deactivated afterwards.
  - O(dest) is written to a temporary file C(.NAME.XXXXXXXX.part) in the same directory and renamed; it is
    either complete or untouched. A run interrupted by SIGTERM leaves neither a partial file nor a held metadata
    snapshot. Temporary files of O(dest) that a killed run left behind are removed by the next run (not in
    check mode), but only regular files owned by the user running the module that no running lvdiff is writing.
  - The diff holds the volume's data. It is created with mode V(0600), owned by the user running the module,
    and never has a wider mode at any moment; an O(dest) it replaces does not pass on its mode or owner.
  - The file format is specified in the collection's C(docs/format.md). Restore with M(lvdiff.thin.lvpatch).
author:
  - lvdiff.thin contributors (!UNKNOWN)
attributes:
  check_mode:
    details: Reserves and releases the pool's metadata snapshot to count the changed chunks; writes nothing.
extends_documentation_fragment:
  - lvdiff.thin.attributes
  - lvdiff.thin.attributes.THIN_TOOLS
  - lvdiff.thin.progress
  - lvdiff.thin.encryption
  - lvdiff.thin.encryption.COMPRESSION
options:
  vg:
    description: Volume group holding O(lv) and O(base).
    type: str
    required: true
  lv:
    description:
      - The thin volume to capture, normally a read-only thin snapshot.
    type: str
    required: true
  base:
    description:
      - A thin volume in the same pool whose state the receiver already has (an older snapshot).
      - Omit it for a full image of O(lv).
    type: str
  dest:
    description: Path of the diff file to write.
    type: path
    required: true
  pairs:
    description:
      - User metadata stored in the file's header, any UTF-8 text as keys and values.
      - With O(format=hyperlayer), keys must be identifiers (letters, digits, V(_), V(.), V(-), inner spaces).
    type: dict
    default: {}
  checksum_level:
    description:
      - How much of the base the receiver verifies before patching.
      - V(0) nothing; V(1) the first chunk the diff touches; V(2) a seeded sample spread over the touched
        chunks (64 chunks plus 1 in 128); V(3) every base chunk the diff overwrites or discards.
    type: int
    default: 2
    choices: [0, 1, 2, 3]
  format:
    description:
      - V(lvdiff) is this collection's format, with a checksum on every record and a trailer.
      - V(hyperlayer) is the Go C(lvdiff) tool's format, for its C(lvpatch); it has no checksums and cannot
        hold a full image.
    type: str
    default: lvdiff
    choices: [lvdiff, hyperlayer]
  force:
    description:
      - Rewrite O(dest) even if it already holds a valid diff of the same volumes in the same state.
    type: bool
    default: false
  progress_file:
    description:
      - Where to write the progress of the run (see the notes), with phase C(checking base) (when
        O(checksum_level) is not V(0); its C(total) is null) and then C(writing), the bytes of volume data read of
        those the diff carries.
      - Default is C(<dest>.progress), next to the diff. An empty string writes none.
    type: path
notes:
  - Idempotence. O(dest) is left alone (RV(ignore:changed=false)) when it is a valid diff of the same O(lv) and
    O(base) (LVM UUIDs, thin ids), with the same options, and both volumes are read-only.
  - That includes compression and encryption. O(dest) is rewritten when it is compressed and O(compress=none)
    or the other way (another O(compress_level) alone keeps it), when it is encrypted and no key is given or
    the other way, and when the key given does not open it (another key file, another passphrase, a
    passphrase for a file encrypted with a key file). A file encrypted with a passphrase is opened with it to
    tell, one scrypt derivation.
    Data in a writable volume can change without any metadata change, so its diff is always rewritten.
  - A HyperLayer file records less, namely the volume's name, UUID and size, the base's UUID, the chunk size, the
    checksum level and the pairs. That is what is compared for O(format=hyperlayer); the base's UUID stands
    for the base (a thin volume keeps its UUID and thin id for life).
  - An O(dest) that is not a regular file owned by the user running the module (a symlink, another user's
    file) is never read or kept; it is replaced by a new diff, and a symlink is replaced, not followed.
  - The pool's transaction id is recorded in the header but is not part of that identity. LVM advances it
    whenever any thin volume of the pool is created or removed, which says nothing about these two read-only
    volumes. So a diff file of an interrupted replication stays valid, and its transfer resumes.
seealso:
  - module: lvdiff.thin.lvpatch
  - module: lvdiff.thin.lvdiff_info
'''

EXAMPLES = r'''
- name: Snapshot a volume read-only, then write what changed since yesterday's snapshot
  block:
    - name: Take today's snapshot
      ansible.builtin.command: lvcreate --snapshot --permission r --name data-snap-2 vg0/data
      changed_when: true

    - name: Write the incremental diff
      lvdiff.thin.lvdiff:
        vg: vg0
        lv: data-snap-2
        base: data-snap-1
        dest: /var/backups/data-snap-2.lvdiff
        pairs:
          host: "{{ inventory_hostname }}"
          ticket: "OPS-1234: nightly"
      register: diff

- name: Full image of a volume, with every base-free chunk
  lvdiff.thin.lvdiff:
    vg: vg0
    lv: data-snap-1
    dest: /var/backups/data-snap-1.full.lvdiff

- name: A long full image in the background; follow it with watch -n 2 cat /var/backups/big.lvdiff.progress
  lvdiff.thin.lvdiff:
    vg: vg0
    lv: big-snap-1
    dest: /var/backups/big.lvdiff
  async: 7200
  poll: 30

- name: A file for the original Go lvpatch
  lvdiff.thin.lvdiff:
    vg: vg0
    lv: data-snap-2
    base: data-snap-1
    dest: /var/backups/data-snap-2.hl
    format: hyperlayer

- name: A compressed, encrypted diff for a backup host that should never see the data
  lvdiff.thin.lvdiff:
    vg: vg0
    lv: data-snap-2
    base: data-snap-1
    dest: /var/backups/data-snap-2.lvdiff
    compress: zstd
    encrypt_key_file: /etc/lvdiff/backup.key
'''

RETURN = r'''
dest:
  description: Path of the diff file, as given in O(dest).
  returned: always
  type: str
  sample: /var/backups/data-snap-2.lvdiff
size:
  description:
    - Size of the diff file in bytes.
    - In check mode, unless O(dest) already holds this diff, the size a run would write (exact for
      O(format=lvdiff), encrypted or not; with O(compress=zstd) an upper bound, the size uncompressed; for
      O(format=hyperlayer) within a few bytes per record).
  returned: always
  type: int
  sample: 209716342
sha1:
  description: SHA-1 of the whole diff file, equal to C(sha1sum) of it.
  returned: when O(dest) was written, or kept because it already held this diff (then also in check mode)
  type: str
  sample: 3f786850e387550fdab836ed7e6dc881de23001b
chunk_size:
  description: The pool's chunk size in bytes, the unit of RV(data_chunks) and RV(discard_chunks).
  returned: always
  type: int
  sample: 65536
volume_size:
  description: Size of O(lv) in bytes, which the restored volume will have.
  returned: always
  type: int
  sample: 10737418240
data_chunks:
  description:
    - Chunks whose data the diff carries, that is chunks of O(lv) that differ from O(base) or are mapped only
      in O(lv) (for a full image, every mapped chunk).
    - For an O(format=hyperlayer) file kept unchanged (RV(ignore:changed=false)) it counts every W record, which
      includes the chunks of zeros that stand for discarded chunks, and RV(discard_chunks) is 0, as the file cannot
      tell them apart. Their sum is the same as when the file was written.
  returned: always
  type: int
  sample: 3200
discard_chunks:
  description:
    - Chunks mapped in O(base) but no longer in O(lv) (discarded, or past a shrunk end); the receiver unmaps them.
    - O(format=hyperlayer) has no discard record and writes them as chunks of zeros.
  returned: always
  type: int
  sample: 12
checks:
  description:
    - Number of base-check records, each the checksum of one range of O(base) that the receiver verifies
      before it writes anything (O(checksum_level) decides which ranges). 0 for a full image or at level 0.
    - An O(format=lvdiff) check covers up to 4 MiB, an O(format=hyperlayer) check (a C(D) line) one chunk, so
      at level 3 a HyperLayer file has more of them.
    - The same number as C(records.check) of M(lvdiff.thin.lvdiff_info).
  returned: always
  type: int
  sample: 89
pairs:
  description: The user pairs stored in the header (O(pairs), values as text).
  returned: always
  type: dict
  sample: {host: web1}
lv_uuid:
  description: LVM UUID of O(lv).
  returned: always
  type: str
  sample: Zr3XyL-nZ1d-0Hd2-Yi4n-kHo1-Ro9v-SPZ2kC
base_uuid:
  description: LVM UUID of O(base), or null for a full image.
  returned: always
  type: str
  sample: 0Hd2Yi-4nkH-o1Ro-9vSP-Z2kC-Zr3X-yLnZ1d
format:
  description: The file format written, O(format).
  returned: always
  type: str
  sample: lvdiff
thin_tools_version:
  description: Version of thin-provisioning-tools used.
  returned: always
  type: str
  sample: 0.9.0
compression:
  description: V(zstd) when the diff's data is compressed (O(compress)), else V(none).
  returned: always
  type: str
  sample: zstd
encryption:
  description: The diff's encryption, V(aes-256-gcm) with O(encrypt_key_file) or O(encrypt_passphrase), else V(none).
  returned: always
  type: str
  sample: aes-256-gcm
key_id:
  description:
    - The key id in the diff's header (32 hex digits), which names the key without revealing it; null when not
      encrypted.
    - With O(encrypt_passphrase) it differs per file (the passphrase goes through scrypt with each file's salt),
      so it is null in check mode unless O(dest) is kept.
  returned: always
  type: str
  sample: 5f0c7a6d2b3e4f8091a2b3c4d5e6f708
stored_data_bytes:
  description:
    - Bytes of data as stored in the file (compressed, without the tags of encryption), against RV(size) and the
      volume data it carries.
  returned: when O(dest) was written, or kept because it already held this diff (then also in check mode)
  type: int
  sample: 52428800
compression_ratio:
  description: The bytes of volume data the diff carries divided by RV(stored_data_bytes) (1.0 uncompressed).
  returned: when O(dest) was written, or kept because it already held this diff; null if it carries no data
  type: float
  sample: 3.912
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _progress, _thinmeta
from ansible_collections.lvdiff.thin.plugins.module_utils._backup import Differ
from ansible_collections.lvdiff.thin.plugins.module_utils._command import Runner
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import require_lib, run_module


def run(module):
    p = module.params
    with _progress.Progress(_progress.path_of(p['progress_file'], p['dest'], module.check_mode), 'writing',
                            None) as progress:
        return Differ(Runner(module), module.check_mode, module.add_cleanup_file).diff(p, progress=progress)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            vg=dict(type='str', required=True),
            lv=dict(type='str', required=True),
            base=dict(type='str'),
            dest=dict(type='path', required=True),
            pairs=dict(type='dict', default={}),
            checksum_level=dict(type='int', default=2, choices=[0, 1, 2, 3]),
            format=dict(type='str', default='lvdiff', choices=['lvdiff', 'hyperlayer']),
            force=dict(type='bool', default=False),
            progress_file=dict(type='path'),
            **dict(_diffio.COMPRESSION_ARGS, **_diffio.ENCRYPTION_ARGS)
        ),
        mutually_exclusive=_diffio.ENCRYPTION_EXCLUSIVE,
        supports_check_mode=True,
    )
    require_lib(module, 'lxml', _thinmeta.HAS_LXML, _thinmeta.LXML_IMPORT_ERROR)
    run_module(module, run)


if __name__ == '__main__':
    main()

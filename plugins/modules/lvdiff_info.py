#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: lvdiff_info
short_description: Read and verify a diff file
version_added: 0.1.0
description:
  - Reads the header of a diff file written by M(lvdiff.thin.lvdiff) or by the Go C(lvdiff) (HYPERLAYER/1.0).
  - With O(verify=true), reads every record, checks every checksum and the trailer, and returns the counts
    and the SHA-1 of the whole file.
  - An encrypted file (format version 2) is verified without its key when none is given (RV(keyless)), as on a
    backup host that never holds it. That checks the framing, every record's checksum, their order and counts
    and the SHA-1 of the whole file, which finds any damage in storage or transit, but not the authentication
    tags, which only the key can check (RV(decoded) is false). With O(encrypt_key_file) or O(encrypt_passphrase)
    every record is also decrypted and its tag checked; a wrong key fails with C(wrong key), not as damage.
author:
  - lvdiff.thin contributors (!UNKNOWN)
attributes:
  check_mode:
    details: Reads only; runs the same in check mode.
extends_documentation_fragment:
  - lvdiff.thin.attributes
  - lvdiff.thin.encryption
options:
  src:
    description: Path of the diff file.
    type: path
    required: true
  verify:
    description: Read and verify the whole file, not only its header.
    type: bool
    default: false
seealso:
  - module: lvdiff.thin.lvdiff
  - module: lvdiff.thin.lvpatch
'''

EXAMPLES = r'''
- name: Check a backup before shipping it
  lvdiff.thin.lvdiff_info:
    src: /var/backups/data-snap-2.lvdiff
    verify: true
  register: info

- name: Show where it came from
  ansible.builtin.debug:
    msg: "{{ info.header.volume.name }} against {{ info.header.base.name | default('nothing (full image)') }}"
'''

RETURN = r'''
format:
  description: V(lvdiff) or V(hyperlayer).
  returned: always
  type: str
  sample: lvdiff
header:
  description:
    - The header. Sizes in bytes. A HyperLayer file records less; what it does not record is null.
  returned: always
  type: dict
  sample:
    format: lvdiff
    format_version: 1
    tool: lvdiff.thin 0.1.0
    created: '2026-11-26T23:50:00Z'
    volume: {name: data-snap-2, uuid: Zr3XyL-nZ1d-0Hd2-Yi4n-kHo1-Ro9v-SPZ2kC, thin_id: 7, size: 10737418240}
    base: {name: data-snap-1, uuid: 0Hd2Yi-4nkH-o1Ro-9vSP-Z2kC-Zr3X-yLnZ1d, thin_id: 5, size: 10737418240}
    chunk_size: 65536
    checksum_level: 2
    sample_seed: 2418842914
    check_digest: sha256
    pool_transaction: 12
    pairs: {host: web1}
  contains:
    format:
      description: V(lvdiff) or V(hyperlayer), as RV(format).
      type: str
    format_version:
      description: Version of the file format (1, or 2 when compressed or encrypted).
      type: int
    tool:
      description: What wrote the file, V(lvdiff.thin VERSION); V(hyperlayer) for any HyperLayer file.
      type: str
    created:
      description: When the file was written (UTC, ISO 8601); null for HyperLayer.
      type: str
    volume:
      description:
        - The captured volume, which a restore recreates; C(name), C(uuid) (LVM UUID), C(thin_id) and
          C(size) in bytes. HyperLayer records no thin id (null).
      type: dict
    base:
      description:
        - The volume the diff must be applied onto, with the same keys as C(volume); null for a full image.
        - HyperLayer records only its C(uuid); C(name), C(thin_id) and C(size) are null.
      type: dict
    chunk_size:
      description: The source pool's chunk size in bytes; the target pool must have the same.
      type: int
    checksum_level:
      description: The C(checksum_level) the file was written with (0 to 3).
      type: int
    sample_seed:
      description: Seed of the level-2 sample of base checks (0 for HyperLayer).
      type: int
    check_digest:
      description: Digest of each base check, V(sha256), or V(crc32) for HyperLayer.
      type: str
    pool_transaction:
      description: The source pool's transaction id when the diff was made (informational); null for HyperLayer.
      type: int
    pairs:
      description: The user pairs, as RV(pairs).
      type: dict
pairs:
  description: The user pairs (the C(pairs) given to M(lvdiff.thin.lvdiff)), text to text.
  returned: always
  type: dict
  sample: {host: web1}
incremental:
  description: Whether the diff needs a base (false for a full image).
  returned: always
  type: bool
  sample: true
verified:
  description: Whether every record and the trailer were verified (true only with O(verify=true)).
  returned: always
  type: bool
  sample: true
size:
  description: Size of the file in bytes.
  returned: always
  type: int
  sample: 209716342
sha1:
  description: SHA-1 of the whole file, as C(sha1sum) prints it.
  returned: when O(verify=true)
  type: str
  sample: 3f786850e387550fdab836ed7e6dc881de23001b
records:
  description:
    - Records per kind. C(check) is the number of base checks, ranges of the base checksummed before
      anything is written (RV(lvdiff.thin.lvdiff#module:checks) of the run that wrote it); C(data) carries
      data; C(discard) unmaps a range on the target.
    - C(data) counts records, not chunks (an lvdiff record spans up to 4 MiB). In a HyperLayer file every W
      record is one chunk and counts as C(data), including the chunks of zeros that stand for discards
      (lvpatch discards them); C(discard) is always 0 there.
    - In a compressed lvdiff file, runs of data records go out as GROUP records (several ranges in one zstd
      frame). C(data) counts their ranges too, as if each were a data record, and C(group) the GROUP
      records; C(group) is there only when the file has some.
  returned: when O(verify=true)
  type: dict
  sample: {check: 89, data: 840, discard: 3}
  contains:
    check:
      description: Base-check records.
      type: int
    data:
      description: Data records.
      type: int
    discard:
      description: Discard records.
      type: int
    group:
      description: GROUP records (compressed lvdiff files only, each holding several of the C(data) ranges).
      type: int
      returned: when the file has GROUP records
data_bytes:
  description: Bytes of data the diff carries (the sum of the data records' lengths).
  returned: when O(verify=true)
  type: int
  sample: 209715200
discard_bytes:
  description: Bytes the diff discards on the target (the sum of the discard records' lengths).
  returned: when O(verify=true)
  type: int
  sample: 196608
compression:
  description: V(zstd) when the file's data records are compressed, else V(none).
  returned: always
  type: str
  sample: zstd
encryption:
  description:
    - The file's encryption, V(aes-256-gcm) (or V(chacha20-poly1305), which this collection reads too), else
      V(none).
  returned: always
  type: str
  sample: aes-256-gcm
key_id:
  description:
    - The key id in the header of an encrypted file (32 hex digits; it names the key, it does not reveal it);
      null otherwise.
  returned: always
  type: str
  sample: 5f0c7a6d2b3e4f8091a2b3c4d5e6f708
keyless:
  description:
    - Whether the file is encrypted and no key was given, so that only what a host without the key can check
      was checked (see the description).
  returned: always
  type: bool
  sample: false
decoded:
  description:
    - Whether every record was also decrypted, its authentication tag checked, and decompressed (false for an
      encrypted file verified without its key).
  returned: when O(verify=true)
  type: bool
  sample: true
stored_data_bytes:
  description: Bytes of data as stored (compressed, without the tags of encryption); RV(data_bytes) uncompressed.
  returned: when O(verify=true)
  type: int
  sample: 52428800
compression_ratio:
  description:
    - RV(data_bytes) divided by RV(stored_data_bytes) (1.0 uncompressed); null when the file carries no data.
  returned: when O(verify=true)
  type: float
  sample: 4.0
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import run_module


def run(module):
    src = module.params['src']
    # strict=False: a report reads a plain file given a key too; a wrong key: WrongKeyError here
    with _diffio.open_diff(src, _diffio.key_of(module.params), strict=False) as reader:
        header = reader.header
        result = dict(_diffio.sealing(header), changed=False, format=header.format, header=header.as_dict(),
                      pairs=header.pairs, incremental=header.incremental, verified=False,
                      size=os.path.getsize(src), keyless=reader.encrypted and reader.key is None)
        if module.params['verify']:
            summary = _diffio.verify(reader)  # keyless: what a host without the key can check
            result.update((k, summary[k]) for k in ('sha1', 'records', 'data_bytes', 'discard_bytes',
                                                    'stored_data_bytes', 'compression_ratio', 'decoded'))
            result['verified'] = True
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(src=dict(type='path', required=True), verify=dict(type='bool', default=False),
                           **_diffio.ENCRYPTION_ARGS),
        mutually_exclusive=_diffio.ENCRYPTION_EXCLUSIVE,
        supports_check_mode=True,
    )
    run_module(module, run)


if __name__ == '__main__':
    main()

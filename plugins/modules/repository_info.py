#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: repository_info
short_description: Inspect and scrub a backup repository of diff files
version_added: 0.1.0
description:
  - Reports what a backup repository holds, a directory tree of diff files
    C(<repository>/<host>/<vg>/<lv>/<created as YYYYmmddTHHMMSSZ>-<full|incr>.lvdiff), per volume (one per host,
    volume group and logical volume; the same names on two hosts are two volumes) - its backups, their bytes,
    its chains from each full image, the backups whose chain is broken (orphans) and the copies of one backup
    (duplicates) - and what it does not take as a backup - partial transfers, misplaced and unreadable files.
  - Links backups into chains by their headers (an incremental's base is the backup whose volume UUID its header
    names), not by their names, as M(lvdiff.thin.restore) does. Without O(verify), only headers are read.
  - With O(verify), reads files whole and verifies them as M(lvdiff.thin.restore) does before it restores a
    chain, links included; a file that fails is reported in RV(volumes[].errors) and the module still
    succeeds, like a scrub. It fails only when the repository itself cannot be read (a missing root, not a
    directory, a directory of more than 100000 entries) or an option is wrong.
  - Needs Python only on the managed host (no LVM, no C(lxml)), so it runs on the backup host or file server.
  - Encrypted backups are verified without their key when none is given, as on a backup host that never holds
    it (framing, record checksums, order, counts, the SHA-1 of each file, which finds any damage in storage or transit);
    they are listed in RV(volumes[].keyless). With O(encrypt_key_file) or O(encrypt_passphrase) they are also
    decrypted and authenticated, as M(lvdiff.thin.restore) does; a file that the key does not open is an
    error (C(wrong key)). Reading headers never needs the key.
author:
  - lvdiff.thin contributors (!UNKNOWN)
attributes:
  check_mode:
    details: Reads only (headers, and whole files with O(verify)); runs the same in check mode.
extends_documentation_fragment:
  - lvdiff.thin.attributes
  - lvdiff.thin.encryption
options:
  repository:
    description:
      - The root of the backup repository. It may itself be a symlink; nothing below it is followed through a
        symlink.
    type: path
    required: true
  host:
    description: Report only this host's volumes.
    type: str
  vg:
    description: Report only the volumes of volume groups of this name.
    type: str
  lv:
    description: Report only the logical volumes of this name.
    type: str
  verify:
    description:
      - V(none), read headers only.
      - V(sample), read and verify the newest restorable chain of each volume whole (the chain of its newest
        backup whose chain reaches a full image), what a restore of its newest state would read.
      - V(all), read and verify every file of every chain (a chain that branches, two incrementals against one
        base, is verified once per branch, so the files they share are read once per branch) and each
        duplicate along its chain. An orphan is not read (no chain of it can be restored); nor is a file after
        a bad one in its chain (it cannot be restored; it is absent from RV(volumes[].verified)).
    type: str
    choices: [none, sample, all]
    default: none
  list_files:
    description:
      - Whether to return each volume's backup files (RV(volumes[].files)).
      - Default is to list them only when O(host), O(vg) and O(lv) all are given, the report of one volume.
        A fleet's repository holds hundreds of volumes with months of backups each, too many to return.
    type: bool
notes:
  - The repository is untrusted. Files are opened below O(repository) without following symlinks, a directory
    may hold at most 100000 entries, and a verified file is proved to be the one scanned (inode, size, header).
  - Reported paths and ids are relative to O(repository); names that are not printable UTF-8 are escaped.
seealso:
  - module: lvdiff.thin.restore
  - module: lvdiff.thin.lvdiff_info
'''

EXAMPLES = r'''
- name: Report the whole repository, headers only
  lvdiff.thin.repository_info:
    repository: /srv/backups
  register: repo

- name: Show the broken chains
  ansible.builtin.debug:
    msg: "{{ item.host }}/{{ item.vg }}/{{ item.lv }}: {{ item.orphans }}"
  loop: "{{ repo.volumes | selectattr('orphans') }}"

- name: Weekly scrub, every file read and verified
  lvdiff.thin.repository_info:
    repository: /srv/backups
    verify: all
  register: scrub

- name: Fail the play when a backup is bad, after the whole scrub has run
  ansible.builtin.assert:
    that: scrub.summary.errors == 0 and scrub.summary.broken_chains == 0
    fail_msg: "{{ scrub.volumes | map(attribute='errors') | flatten }}"

- name: Every backup file of one volume, its newest chain verified
  lvdiff.thin.repository_info:
    repository: /srv/backups
    host: web1
    vg: vg0
    lv: data
    verify: sample
'''

RETURN = r'''
volumes:
  description: One entry per volume that holds a backup, sorted by host, vg and lv.
  returned: always
  type: list
  elements: dict
  contains:
    host:
      description: The host directory.
      type: str
      sample: web1
    vg:
      description: The volume group directory.
      type: str
      sample: vg0
    lv:
      description: The logical volume directory.
      type: str
      sample: data
    backups:
      description: Number of backup files, orphans and duplicates included.
      type: int
      sample: 31
    fulls:
      description: Number of full images among them.
      type: int
      sample: 5
    bytes:
      description: Sum of the sizes of the backup files in bytes.
      type: int
      sample: 5401223168
    oldest:
      description: When the oldest backup was made (UTC), from its header (a HyperLayer file's from its name).
      type: str
      sample: '2026-11-01T03:00:00Z'
    newest:
      description: When the newest backup was made (UTC).
      type: str
      sample: '2026-12-01T03:00:00Z'
    chains:
      description:
        - The restorable backups, one entry per full image, in the order of the full images' times.
        - A chain may branch (two incrementals against one base); its ids are then every branch's.
      type: list
      elements: dict
      contains:
        ids:
          description: The ids of the chain's backups, the full image first, then by time.
          type: list
          elements: str
          sample: [web1/vg0/data/20261201T030000Z-full.lvdiff, web1/vg0/data/20261202T030000Z-incr.lvdiff]
        newest:
          description: When the chain's newest backup was made (UTC).
          type: str
          sample: '2026-12-02T03:00:00Z'
        bytes:
          description: Sum of the sizes of the chain's files in bytes.
          type: int
          sample: 1074790400
    orphans:
      description:
        - The backups whose chain is broken, by time; none can be restored. An incremental whose base is not in
          the repository, and every incremental made (directly or not) against it.
      type: list
      elements: dict
      contains:
        id:
          description: The orphan's id.
          type: str
          sample: web1/vg0/data/20261203T030000Z-incr.lvdiff
        missing_base:
          description:
            - The volume UUID of the missing backup where its chain breaks, from the header of the file that was
              made against it (escaped if not printable, at most 255 characters).
          type: str
          sample: Zr3XyL-nZ1d-0Hd2-Yi4n-kHo1-Ro9v-SPZ2kC
    duplicates:
      description:
        - Two files of one volume UUID, copies of one diff (same size and base). The newer name is kept in
          RV(volumes[].chains), the older one is listed here.
      type: list
      elements: dict
      contains:
        id:
          description: The duplicate's id.
          type: str
          sample: web1/vg0/data/20261203T030000Z-incr.lvdiff
        kept:
          description: The id of the file kept in its place.
          type: str
          sample: web1/vg0/data/20261203T050000Z-incr.lvdiff
    verified:
      description: The ids of the files read whole and verified without fault, by time (empty with O(verify=none)).
      type: list
      elements: str
      sample: [web1/vg0/data/20261201T030000Z-full.lvdiff]
    keyless:
      description:
        - The ids among RV(volumes[].verified) of encrypted files verified without their key (no key was given),
          whose authentication tags were not checked; by time.
      type: list
      elements: str
      sample: [web1/vg0/data/20261202T030000Z-incr.lvdiff]
    errors:
      description:
        - What failed, by time; the module does not fail for it.
        - A verification failure of a file, or, with the volume's directory as id, a volume whose backups cannot
          be linked into chains (two different diffs of one volume UUID, bases that loop; its RV(volumes[].chains),
          RV(volumes[].orphans) and RV(volumes[].duplicates) are then empty and nothing of it is verified).
      type: list
      elements: dict
      contains:
        id:
          description: The file's id, or the volume's directory C(host/vg/lv).
          type: str
          sample: web1/vg0/data/20261202T030000Z-incr.lvdiff
        msg:
          description: Why.
          type: str
          sample: >-
            web1/vg0/data/20261202T030000Z-incr.lvdiff: corrupt diff: record 3 at file offset 4321:
            DATA record checksum mismatch (volume offset 65536, length 4096)
    files:
      description: Every backup file of the volume, by time.
      returned: when O(list_files=true), or O(host), O(vg) and O(lv) are all given and O(list_files) is not
      type: list
      elements: dict
      contains:
        id:
          description: The file's path relative to O(repository), its id.
          type: str
          sample: web1/vg0/data/20261202T030000Z-incr.lvdiff
        created:
          description: When the backup was made (UTC).
          type: str
          sample: '2026-12-02T03:00:00Z'
        full:
          description: Whether the file is a full image.
          type: bool
          sample: false
        file_size:
          description: Size of the file in bytes.
          type: int
          sample: 1048576
        base:
          description:
            - The id of the backup it was made against; null for a full image, for an incremental whose base is
              missing (see RV(volumes[].orphans)) and in a volume whose backups cannot be linked.
          type: str
          sample: web1/vg0/data/20261201T030000Z-full.lvdiff
        volume_uuid:
          description:
            - The LV UUID of the volume (the snapshot) the backup holds, from its header. The role
              C(lvdiff.thin.backup) finds by it the source snapshot an incremental is made against.
          type: str
          sample: Zr3XyL-nZ1d-0Hd2-Yi4n-kHo1-Ro9v-SPZ2kC
        compression:
          description: V(zstd) when the file's data is compressed, else V(none) (from its header).
          type: str
          sample: zstd
        encryption:
          description: The file's encryption, V(aes-256-gcm), else V(none) (from its header).
          type: str
          sample: aes-256-gcm
        key_id:
          description: The key id in the header of an encrypted file; null otherwise.
          type: str
          sample: 5f0c7a6d2b3e4f8091a2b3c4d5e6f708
partial:
  description: Leftovers of transfers in progress or interrupted (C(.part), C(.part.sha1)), never backups; paths.
  returned: always
  type: list
  elements: str
  sample: [web1/vg0/data/20261203T030000Z-incr.lvdiff.part]
misplaced:
  description: What is not taken as a backup where it is, and why (a symlink, a wrong name, a foreign header...).
  returned: always
  type: list
  elements: dict
  sample:
    - path: web1/vg0/data/20261201T040000Z-full.lvdiff
      why: its header pairs place it in web2/vg0/data
  contains:
    path:
      description: Its path relative to O(repository).
      type: str
    why:
      description: Why it is not taken.
      type: str
unreadable:
  description: Files with a backup's name whose header cannot be read (not a diff, unreadable), and why.
  returned: always
  type: list
  elements: dict
  sample:
    - path: web1/vg0/data/20261209T030000Z-incr.lvdiff
      msg: "not a diff file: it starts with b'GIF89a, not a d', neither the lvdiff magic nor HYPERLAYER/1.0"
  contains:
    path:
      description: Its path relative to O(repository).
      type: str
    msg:
      description: Why it cannot be read.
      type: str
summary:
  description: Totals over RV(volumes).
  returned: always
  type: dict
  sample: {volumes: 2, backups: 9, bytes: 123456, broken_chains: 1, orphans: 2, verified: 0, errors: 0}
  contains:
    volumes:
      description: Number of volumes.
      type: int
    backups:
      description: Number of backup files.
      type: int
    bytes:
      description: Their bytes.
      type: int
    broken_chains:
      description: Number of breaks, one per volume and missing base volume UUID (see RV(volumes[].orphans)).
      type: int
    orphans:
      description: Number of orphans.
      type: int
    verified:
      description: Number of files verified without fault.
      type: int
    errors:
      description: Number of entries of RV(volumes[].errors).
      type: int
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _repository, _retention
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError, run_module

# link's base of an orphan is MISSING_BASE % uuid: the uuid, bounded and escaped, follows this prefix.
_MISSING_PREFIX = _repository.MISSING_BASE % ''


def run(module):
    p = module.params
    list_files = p['list_files']
    if list_files is None:
        list_files = None not in (p['host'], p['vg'], p['lv'])
    key = _diffio.key_of(p)
    return dict(report(p['repository'], p['host'], p['vg'], p['lv'], p['verify'], list_files, key), changed=False)


def report(root, host=None, vg=None, lv=None, verify='none', list_files=False, key=None):
    """The module's result (without changed) for the repository root, only host's, vg's, lv's when given; key:
    to decrypt encrypted files as they are verified (without it, they are verified keylessly)."""
    found = _repository.scan(root, host, vg, lv)
    volumes = [_volume(root, place, backups, verify, list_files, key)
               for place, backups in sorted(found['volumes'].items())]
    summary = {'volumes': len(volumes),
               'broken_chains': sum(len(set(o['missing_base'] for o in v['orphans'])) for v in volumes)}
    for name in ('backups', 'bytes'):
        summary[name] = sum(v[name] for v in volumes)
    for name in ('orphans', 'verified', 'errors'):
        summary[name] = sum(len(v[name]) for v in volumes)
    return {'volumes': volumes, 'partial': found['partial'],
            'misplaced': [{'path': path, 'why': why} for path, why in found['misplaced']],
            'unreadable': [{'path': path, 'msg': msg} for path, msg in found['unreadable']],
            'summary': summary}


def _volume(root, place, backups, verify, list_files, key=None):
    """The report of one volume, from its backups as scan found them (oldest first)."""
    vid = '/'.join(place)
    result = {'host': place[0], 'vg': place[1], 'lv': place[2], 'backups': len(backups),
              'fulls': sum(1 for b in backups if b['full']), 'bytes': sum(b['file_size'] for b in backups),
              'oldest': backups[0]['created'], 'newest': backups[-1]['created'],
              'chains': [], 'orphans': [], 'duplicates': [], 'verified': [], 'keyless': [], 'errors': []}
    kept_of = {}
    try:
        linked, _orphans, duplicates = _repository.link(backups)
    except LvdiffError as e:  # the volume's, not the repository's: reported, the others still are
        result['errors'].append({'id': vid, 'msg': e.msg})
    else:
        kept_of = dict((b['volume_uuid'], b['id']) for b in linked)
        chains = _Chains(linked, duplicates, backups)
        result.update(chains=chains.report(), orphans=chains.orphans(),
                      duplicates=[{'id': d, 'kept': k} for d, k in duplicates])
        if verify != 'none':
            paths = chains.newest_path() if verify == 'sample' else chains.every_path()
            result['verified'], result['keyless'], result['errors'] = _verify(root, vid, paths, backups, key)
    if list_files:
        result['files'] = [{'id': b['id'], 'created': b['created'], 'full': b['full'], 'file_size': b['file_size'],
                            'base': None if b['full'] else kept_of.get(b['base_uuid']),
                            'volume_uuid': b['volume_uuid'], 'compression': b['compression'],
                            'encryption': b['encryption'], 'key_id': b['key_id']} for b in backups]
    return result


class _Chains:
    """One volume's linked backups (link's) grouped by the full image their chain reaches."""

    def __init__(self, linked, duplicates, backups):
        self.linked = linked
        self.duplicates = duplicates
        self.by_id = dict((b['id'], b) for b in linked)
        self.scanned = dict((b['id'], b) for b in backups)
        # _retention's orphans are transitive: an incremental against an orphan is one too
        picked = _retention.select(linked, None)
        self.restorable = set(picked['points'])
        self.newest = picked['points'][0] if picked['points'] else None
        self.orphan_ids = set(picked['orphans'])
        self.full_of = {}
        for b in linked:
            if b['id'] in self.restorable:
                self.full_of[b['id']] = self.path(b['id'])[0]['id']

    def path(self, bid):
        """[full image, ..., bid]: its chain (bid restorable, so the walk reaches a full image)."""
        path = [self.by_id[bid]]
        while path[-1]['base'] is not None:
            path.append(self.by_id[path[-1]['base']])
        return path[::-1]

    def report(self):
        members = {}
        for b in self.linked:  # oldest first
            if b['id'] in self.restorable and not b['full']:
                members.setdefault(self.full_of[b['id']], []).append(b)
        chains = []
        for full in self.linked:
            if full['id'] in self.restorable and full['full']:
                files = [full] + members.get(full['id'], [])
                chains.append({'ids': [b['id'] for b in files], 'newest': max(b['created'] for b in files),
                               'bytes': sum(b['file_size'] for b in files)})
        return chains

    def orphans(self):
        out = []
        for b in self.linked:
            if b['id'] in self.orphan_ids:
                broken = b
                while broken['base'] in self.by_id:
                    broken = self.by_id[broken['base']]
                out.append({'id': b['id'], 'missing_base': broken['base'][len(_MISSING_PREFIX):]})
        return out

    def newest_path(self):
        return [self.path(self.newest)] if self.newest is not None else []

    def every_path(self):
        """One path per tip (a restorable backup that is no backup's base), by chain and time, then one per
        duplicate of a restorable backup: together they hold every file that can be restored."""
        bases = set(b['base'] for b in self.linked if b['id'] in self.restorable)
        order = dict((b['id'], i) for i, b in enumerate(self.linked))
        tips = sorted((i for i in self.restorable if i not in bases),
                      key=lambda i: (order[self.full_of[i]], order[i]))
        paths = [self.path(i) for i in tips]
        for duplicate, kept in self.duplicates:
            if kept in self.restorable:
                paths.append(self.path(kept)[:-1] + [self.scanned[duplicate]])
        return paths


def _verify(root, vid, paths, backups, key=None):
    """(ids verified, ids of those verified without their key, [{id, msg}]) of verify_chain on each path; a path
    through a file already found bad is not read again (the same fault would be reported twice)."""
    verified, bad, errors = set(), set(), []
    for path in paths:
        if any(b['id'] in bad for b in path):
            continue
        try:
            _repository.verify_chain(root, path, key=key, strict=False)
        except LvdiffError as e:
            # verify_chain stops at the first bad file and names it first: those before it are good
            at = [i for i, b in enumerate(path) if e.msg.startswith(b['id'] + ': ')]
            if not at:  # not a file's fault (the root gone meanwhile): nothing more of this volume can be read
                errors.append({'id': vid, 'msg': e.msg})
                break
            verified.update(b['id'] for b in path[:at[0]])
            bad.add(path[at[0]]['id'])
            errors.append({'id': path[at[0]]['id'], 'msg': e.msg})
        else:
            verified.update(b['id'] for b in path)
    order = dict((b['id'], i) for i, b in enumerate(backups))
    order[vid] = -1
    good = [b['id'] for b in backups if b['id'] in verified and b['id'] not in bad]
    # verify_chain decodes what it can: an encrypted file is verified keylessly exactly when no key is given
    keyless = [b['id'] for b in backups if key is None and b['encryption'] != 'none' and b['id'] in good]
    return good, keyless, sorted(errors, key=lambda e: order[e['id']])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repository=dict(type='path', required=True),
            host=dict(type='str'),
            vg=dict(type='str'),
            lv=dict(type='str'),
            verify=dict(type='str', choices=['none', 'sample', 'all'], default='none'),
            list_files=dict(type='bool'),
            **_diffio.ENCRYPTION_ARGS
        ),
        mutually_exclusive=_diffio.ENCRYPTION_EXCLUSIVE,
        supports_check_mode=True,
    )
    run_module(module, run)


if __name__ == '__main__':
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: prune
short_description: Remove the backups a retention policy no longer keeps from a backup repository
version_added: 0.1.0
description:
  - The backup host side of a retention policy. For each volume of O(volumes), scans its directory
    C(<root>/<host>/<vg>/<lv>/) of a backup repository as M(lvdiff.thin.repository_info) does, links its backups
    into chains by their headers, decides with O(policy) which to keep (as C(borg prune) and C(restic forget)
    do) and removes the others.
  - A chain is never broken. Every backup kept keeps its whole chain back to its full image, and the files are
    removed newest first, so that a prune interrupted at any point leaves shorter chains, never an orphan.
  - Only files the scan took as backups of that volume are removed. Partial transfers (C(.part)), misplaced
    files (a symlink, a wrong name, a header that places the file elsewhere) and unreadable files are never
    touched, only reported.
  - Before a file is removed, its name is looked up again in the volume's directory (opened without following
    a symlink, as every directory on the way). If it is no longer the regular file the scan read (same device
    and inode), it is left in place and reported in RV(volumes[].skipped), and so are the backups of its chain
    that it was made against, which it may still need.
  - Two copies of one backup (the duplicates of M(lvdiff.thin.repository_info)) are kept or removed together.
  - One volume's failure (its directory cannot be opened or is a symlink, its backups cannot be linked into
    chains) is that volume's result, with nothing of it removed; the others are still pruned and the module
    does not fail for it. The module fails, removing nothing, when an option is wrong (a bad policy, a bad
    name) or the repository itself cannot be opened.
  - Needs Python only on the managed host (no LVM, no C(lxml)), so it runs on the backup host or file server.
author:
  - lvdiff.thin contributors (!UNKNOWN)
attributes:
  check_mode:
    details: Scans and checks every file as a real run does and returns the same result, but removes nothing.
extends_documentation_fragment:
  - lvdiff.thin.attributes
options:
  repository:
    description:
      - The root of the backup repository. It may itself be a symlink; nothing below it is followed through a
        symlink.
    type: path
    required: true
  volumes:
    description:
      - The volumes to prune, each named by its host, volume group and logical volume directories. The same
        names on two hosts are two volumes. A volume with no backup (no directory) is fine, its result empty.
      - A volume may be listed once.
    type: list
    elements: dict
    required: true
    suboptions:
      host:
        description: The host directory.
        type: str
        required: true
      vg:
        description: The volume group directory.
        type: str
        required: true
      lv:
        description: The logical volume directory.
        type: str
        required: true
  policy:
    description:
      - The retention policy, applied to each volume's restorable backups (those whose chain reaches a full
        image). A count that is missing, null or 0 turns its rule off.
      - The newest restorable backup is always kept (the next incremental is made against it), and every
        backup kept keeps the backups its chain needs.
      - When every C(keep_*) rule is off, everything is kept, orphans included, whatever O(prune_orphans) says.
        A policy that would keep nothing is taken for a mistake, never as "remove all".
      - A negative count fails the module before anything is removed.
    type: dict
    required: true
    suboptions:
      keep_last:
        description: Keep the N newest restorable backups.
        type: int
      keep_hourly:
        description:
          - Keep the newest backup of each of the N newest hours that have one (UTC).
          - Each C(keep_*) rule counts by itself; a backup may be kept by several.
        type: int
      keep_daily:
        description: Keep the newest backup of each of the N newest days that have one (UTC).
        type: int
      keep_weekly:
        description: Keep the newest backup of each of the N newest ISO weeks (Monday to Sunday, UTC) that have one.
        type: int
      keep_monthly:
        description: Keep the newest backup of each of the N newest months that have one (UTC).
        type: int
      keep_yearly:
        description: Keep the newest backup of each of the N newest years that have one (UTC).
        type: int
      full_every:
        description:
          - Accepted and ignored, so that one policy can be given to every task of a backup run; it decides
            when the next backup is a full image, not what is kept.
        type: int
      full_days:
        description: Accepted and ignored, as O(policy.full_every).
        type: int
  prune_orphans:
    description:
      - Whether to remove the orphans, the incrementals whose chain does not reach a full image in the
        repository (none can be restored).
      - By default they are kept and reported in RV(volumes[].orphans). A missing base may still arrive, for
        example while an C(rsync) of the repository is under way or after a transfer that will be resumed; only
        once it is sure that the base is lost should O(prune_orphans=true) remove them.
    type: bool
    default: false
notes:
  - The repository is untrusted. Directories are opened below O(repository) without following symlinks, a directory
    may hold at most 100000 entries, and only headers are read.
  - A file's identity is checked just before its name is removed; a file put in its place in between, by a
    process that can write to the volume's directory, would be removed instead. Do not run two prunes of one
    repository at once.
  - Reported ids and paths are relative to O(repository); names that are not printable UTF-8 are escaped.
seealso:
  - module: lvdiff.thin.repository_info
  - module: lvdiff.thin.restore
'''

EXAMPLES = r'''
- name: Keep 7 daily, 4 weekly and 6 monthly backups of two volumes of web1
  lvdiff.thin.prune:
    repository: /srv/backups
    volumes:
      - {host: web1, vg: vg0, lv: data}
      - {host: web1, vg: vg0, lv: logs}
    policy:
      keep_daily: 7
      keep_weekly: 4
      keep_monthly: 6
  register: pruned

- name: Show what was freed and what was left alone
  ansible.builtin.debug:
    msg: >-
      {{ pruned.summary.bytes_freed }} bytes freed;
      skipped {{ pruned.volumes | map(attribute='skipped') | flatten }}

- name: What the policy would remove, orphans too, without removing anything
  lvdiff.thin.prune:
    repository: /srv/backups
    volumes: "{{ backup_volumes }}"
    policy: "{{ retention }}"
    prune_orphans: true
  check_mode: true
  register: would_prune
'''

RETURN = r'''
volumes:
  description: One entry per volume of O(volumes), in that order. Lists of backups are newest first.
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
    failed:
      description: Whether this volume could not be pruned (see RV(volumes[].msg)); nothing of it was removed.
      type: bool
      sample: false
    msg:
      description: Why this volume could not be pruned.
      returned: when RV(volumes[].failed=true)
      type: str
      sample: 'cannot prune web1/vg0/data: web1/vg0: symlink'
    kept:
      description:
        - The backups left in place on purpose, each with why. The reasons are C(newest), C(last), C(hourly),
          C(daily), C(weekly), C(monthly), C(yearly), C(base of <id>) (a backup kept needs it), C(copy of <id>)
          (a duplicate of a backup kept), C(no keep rule) (every C(keep_*) rule is off) and C(orphan) (an
          orphan kept as O(prune_orphans=false) asks).
      type: list
      elements: dict
      contains:
        id:
          description: The backup's path relative to O(repository).
          type: str
          sample: web1/vg0/data/20261202T030000Z-incr.lvdiff
        created:
          description: When it was made (UTC).
          type: str
          sample: '2026-12-02T03:00:00Z'
        full:
          description: Whether it is a full image.
          type: bool
          sample: false
        reasons:
          description: Why it is kept.
          type: list
          elements: str
          sample: [daily, base of web1/vg0/data/20261203T030000Z-incr.lvdiff]
    pruned:
      description: The ids of the backups removed (in check mode, that would be), in the order of removal.
      type: list
      elements: str
      sample: [web1/vg0/data/20261130T030000Z-incr.lvdiff, web1/vg0/data/20261129T030000Z-full.lvdiff]
    orphans:
      description:
        - The ids of the orphans, the incrementals whose chain does not reach a full image; they are also in
          RV(volumes[].kept) or, with O(prune_orphans=true), in RV(volumes[].pruned).
      type: list
      elements: str
      sample: [web1/vg0/data/20261204T030000Z-incr.lvdiff]
    skipped:
      description: The backups that were to be removed and were left in place, and why.
      type: list
      elements: dict
      contains:
        id:
          description: The backup's id.
          type: str
          sample: web1/vg0/data/20261130T030000Z-incr.lvdiff
        why:
          description: Why it was left in place.
          type: str
          sample: replaced since the scan, another file has its name now
    bytes_freed:
      description: The bytes of the files in RV(volumes[].pruned).
      type: int
      sample: 2147483648
    bytes_kept:
      description: The bytes of the volume's backup files left in place (kept, orphans kept and skipped).
      type: int
      sample: 5401223168
    partial:
      description: Leftovers of transfers in the volume's directory (C(.part), C(.part.sha1)), never removed.
      type: list
      elements: str
      sample: [web1/vg0/data/20261203T030000Z-incr.lvdiff.part]
    misplaced:
      description: What in the volume's directory is not taken as its backup, and why; never removed.
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
      description: Files with a backup's name whose header cannot be read, and why; never removed.
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
  sample: {volumes: 2, failed: 0, kept: 14, pruned: 3, orphans: 0, skipped: 0, bytes_freed: 3221225472,
           bytes_kept: 9663676416}
  contains:
    volumes:
      description: Number of volumes.
      type: int
    failed:
      description: Number of volumes that could not be pruned.
      type: int
    kept:
      description: Number of backups kept.
      type: int
    pruned:
      description: Number of backups removed (in check mode, that would be).
      type: int
    orphans:
      description: Number of orphans.
      type: int
    skipped:
      description: Number of backups left in place that were to be removed.
      type: int
    bytes_freed:
      description: Bytes freed.
      type: int
    bytes_kept:
      description: Bytes of the backup files left in place.
      type: int
'''

import os
import stat

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lvdiff.thin.plugins.module_utils import _batch, _repository, _retention
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError, run_module

_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_COUNTS = ('kept', 'pruned', 'orphans', 'skipped')
_BYTES = ('bytes_freed', 'bytes_kept')


def run(module):
    p = module.params
    root = p['repository']
    places = []
    for item in p['volumes']:  # a bad name fails the run before anything is removed
        place = tuple(_repository.check_name(item[key], level)
                      for key, level in zip(('host', 'vg', 'lv'), _repository.LEVELS))
        if place in places:
            raise LvdiffError('volume %s is listed twice in volumes' % '/'.join(place))
        places.append(place)
    policy = _retention.check_policy(dict((k, v) for k, v in p['policy'].items() if v is not None))
    _check_root(root)
    results = _batch.each(places, lambda place: prune_volume(root, place, policy, p['prune_orphans'],
                                                             module.check_mode))
    volumes = []
    for place, result in zip(places, results):
        if result['failed']:  # nothing of it was removed: the shape of an empty volume, and why
            result = dict(_empty(place), **result)
        volumes.append(result)
    summary = {'volumes': len(volumes), 'failed': sum(1 for v in volumes if v['failed'])}
    for key in _COUNTS:
        summary[key] = sum(len(v[key]) for v in volumes)
    for key in _BYTES:
        summary[key] = sum(v[key] for v in volumes)
    return {'changed': summary['pruned'] > 0, 'volumes': volumes, 'summary': summary}


def _check_root(root):
    try:
        os.close(os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
    except OSError as e:
        raise LvdiffError('cannot open the backup repository %s: %s' % (root, e.strerror))


def _empty(place):
    result = {'host': place[0], 'vg': place[1], 'lv': place[2], 'partial': [], 'misplaced': [], 'unreadable': []}
    result.update((key, []) for key in _COUNTS)
    result.update((key, 0) for key in _BYTES)
    return result


def prune_volume(root, place, policy, prune_orphans, check_mode):
    """The result of pruning one volume (without failed); LvdiffError when it cannot be pruned at all."""
    vid = '/'.join(place)
    found = _repository.scan(root, *place)
    result = _empty(place)
    result.update(partial=found['partial'],
                  misplaced=[{'path': path, 'why': why} for path, why in found['misplaced']],
                  unreadable=[{'path': path, 'msg': msg} for path, msg in found['unreadable']])
    # the volume's own directory or one above it, not taken: nothing of the volume could be seen
    for path, why in found['misplaced'] + found['unreadable']:
        if vid == path or vid.startswith(path + '/'):
            raise LvdiffError('cannot prune %s: %s: %s' % (vid, path, why))
    backups = found['volumes'].get(place, [])
    if not backups:
        return result
    decided = _decide(backups, policy, prune_orphans)
    result['orphans'] = decided['orphans']
    by_id = dict((b['id'], b) for b in backups)
    removed, skipped = _remove(root, place, [by_id[i] for i in decided['remove']], decided['base_of'], check_mode)
    gone = set(removed)
    result.update(
        kept=[{'id': i, 'created': by_id[i]['created'], 'full': by_id[i]['full'], 'reasons': decided['reasons'][i]}
              for i in decided['keep']],
        pruned=removed, skipped=skipped,
        bytes_freed=sum(by_id[i]['file_size'] for i in removed),
        bytes_kept=sum(b['file_size'] for b in backups if b['id'] not in gone))
    return result


def _newest_first(backups):
    return sorted(backups, key=lambda b: (b['created'], b['id']), reverse=True)


def _decide(backups, policy, prune_orphans):
    """{keep: [ids], reasons: {id: [reason]}, remove: [ids], orphans: [ids], base_of: {id: base id}} of one
    volume's backups (scan's), every list newest first. A duplicate goes where its kept copy goes."""
    linked, _orphans, duplicates = _repository.link(backups)
    picked = _retention.select(linked, policy)
    orphans = set(picked['orphans'])
    remove = set(i for i in picked['prune'] if prune_orphans or i not in orphans)
    reasons = dict((i, list(why)) for i, why in picked['reasons'].items())
    for i in orphans - remove - set(reasons):
        reasons[i] = ['orphan']
    base_of = dict((b['id'], b['base']) for b in linked)
    for duplicate, copy in duplicates:
        base_of[duplicate] = base_of[copy]
        if copy in remove:
            remove.add(duplicate)
        else:
            reasons[duplicate] = ['copy of %s' % copy]
        if copy in orphans:
            orphans.add(duplicate)
    ordered = [b['id'] for b in _newest_first(backups)]
    return {'keep': [i for i in ordered if i not in remove], 'reasons': reasons,
            'remove': [i for i in ordered if i in remove], 'orphans': [i for i in ordered if i in orphans],
            'base_of': base_of}


def _open_volume_dir(root, place):
    """An fd of the volume's directory: every directory below root opened without following a symlink."""
    fds = []
    try:
        fds.append(os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        for name in place:
            fds.append(os.open(name, _OPEN_DIR, dir_fd=fds[-1]))
    except OSError as e:
        for fd in fds:
            os.close(fd)
        raise LvdiffError('cannot prune %s: cannot open its directory again: %s' % ('/'.join(place), e.strerror))
    for fd in fds[:-1]:
        os.close(fd)
    return fds[-1]


def _remove(root, place, doomed, base_of, check_mode):
    """(ids removed, [{id, why}] skipped) of doomed (scan's backups, newest first). A file is removed only if
    its name still holds the file scanned; one left in place holds back the backups it was made against."""
    removed, skipped, held = [], [], {}
    dir_fd = _open_volume_dir(root, place)
    try:
        for backup in doomed:
            bid = backup['id']
            why = held.get(bid) or _changed(dir_fd, backup)
            if why is None and not check_mode:
                try:
                    os.unlink(os.path.basename(bid), dir_fd=dir_fd)
                except OSError as e:
                    why = 'cannot remove: %s' % e.strerror
            if why is None:
                removed.append(bid)
                continue
            skipped.append({'id': bid, 'why': why})
            base = base_of.get(bid)
            while base in base_of and base not in held:  # stops at a full image's None, an orphan's missing base
                held[base] = 'in the chain of %s, which was left in place' % bid
                base = base_of[base]
    finally:
        os.close(dir_fd)
    return removed, skipped


def _changed(dir_fd, backup):
    """Why the name of backup no longer holds the file scanned, or None if it does."""
    try:
        st = os.stat(os.path.basename(backup['id']), dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return 'gone since the scan'
    except OSError as e:
        return 'cannot stat: %s' % e.strerror
    if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (backup['device'], backup['inode']):
        return 'replaced since the scan, another file has its name now'
    return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repository=dict(type='path', required=True),
            volumes=dict(type='list', elements='dict', required=True, options=dict(
                host=dict(type='str', required=True),
                vg=dict(type='str', required=True),
                lv=dict(type='str', required=True),
            )),
            policy=dict(type='dict', required=True, options=dict(
                (key, dict(type='int')) for key in _retention.KEEP_RULES + _retention.NEXT_RULES)),
            prune_orphans=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    run_module(module, run)


if __name__ == '__main__':
    main()

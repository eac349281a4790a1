# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Make a volume from a diff: what lvpatch does, shared by lvpatch and receive; or from a backup
repository's chain of diffs in one go (patch_chain: restore's core). And the final state of a replica
(finish), which lvpatch gives its new volume and receive gives replicas left unfinished."""

from __future__ import annotations

import os

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _lock, _repository
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import BaseMismatchError, FormatError, LvdiffError
from ansible_collections.lvdiff.thin.plugins.module_utils._lvm import (
    LV, TAG_DIFF, TAG_ORIGIN, TMP_SUFFIX, check_name, check_name_length, check_tag, device_path, pool_in, thin_in)
from ansible_collections.lvdiff.thin.plugins.module_utils._plan import ceil_div
from ansible_collections.lvdiff.thin.plugins.module_utils._progress import NO_PROGRESS

# Locks of runs in progress, one file per VG and name, in _lock's private directory (tests move it).
LOCK_DIR = _lock.LOCK_DIR
# The state lvpatch gives a new volume by default, and receive every replica: read-only, inactive and
# flagged activation skip, like a thin snapshot; the base of the next restore of its chain stays as it is.
REPLICA = {'permission': 'r', 'activate': False}


def patch(lvm, src, vg, name=None, base=None, pool=None, base_check=True, final=None, tags=(),
          check_mode=False, lvs=None, refinish=False, later=None, progress=NO_PROGRESS, key=None):
    """Make vg/name from the diff file src, under name's lock (none in check mode: the lock directory
    would be a change); lvpatch's result. final: REPLICA's keys, the new volume's state; tags: added to
    it besides ours. An existing name made from this very diff gets its missing tags (and final's
    state too with refinish); anything else existing is refused. lvs: vg's {name: LV}, if the caller
    has it fresh. later: a list to put the name of a volume to deactivate on, for the caller to deactivate
    many at once (see finish). progress (_progress's) follows the writing: phase 'applying', bytes of src read.
    key (a _seal.Key): an encrypted src is read with it (a wrong one, or a plain src, refused as the file is
    opened: see _diffio.open_reader)."""
    # One open file for the whole run: its header is parsed once, and what is checked is what is applied.
    with _diffio.open_diff(src, key) as reader:
        header = reader.header
        if not (name or header.volume['name']):
            raise LvdiffError('the diff records no volume name: give name, the name of the new volume')
        name = check_name('volume', name or header.volume['name'])
        check_name('volume group', vg)
        check_name_length(vg, name + TMP_SUFFIX, 'temporary volume')
        target = dict(REPLICA if final is None else final, vg=vg, name=name, base=base, pool=pool,
                      base_check=base_check, tags=[check_tag(t) for t in tags], refinish=refinish, later=later,
                      progress=progress, key=key)
        if check_mode:
            return _restore(lvm, reader, src, target, check_mode, lvs)
        with lock(vg, name):
            return _restore(lvm, reader, src, target, check_mode, lvs)


def patch_chain(lvm, root, chain, vg, name, pool, tags=(), final=None, check_mode=False, progress=NO_PROGRESS,
                key=None):
    """Make vg/name in pool from a chain of the backup repository root (_repository.resolve's, the full
    image first) in one temporary volume: each incremental applied onto what the files before it made,
    so that its base checks run against that state. Under name's lock (none in check mode), the target
    checked and every file of the chain verified before anything is created. restore's result. final:
    REPLICA's keys, the new volume's state; tags: added to it besides ours. An existing name made from the
    chain's newest file gets its missing tags; anything else existing is refused. progress (_progress's):
    phase 'verifying', then 'applying', each of the chain's file bytes. key: to decrypt the chain's files, all
    encrypted then (a plain one is refused); an encrypted file and no key is refused before anything is made."""
    if not chain:
        raise LvdiffError('an empty chain: nothing to restore')
    check_name('volume', name)
    check_name('volume group', vg)
    check_name('thin pool', pool)
    check_name_length(vg, name + TMP_SUFFIX, 'temporary volume')
    target = dict(REPLICA if final is None else final, vg=vg, name=name, pool=pool, base_check=True,
                  tags=[check_tag(t) for t in tags], refinish=False, later=None, progress=progress, key=key)
    if check_mode:
        return _restore_chain(lvm, root, chain, target, check_mode)
    with lock(vg, name):
        return _restore_chain(lvm, root, chain, target, check_mode)


def verify(src, key=None):
    """Check mode, for a diff whose base an earlier step would make: the whole file read and verified,
    patch's counts. An encrypted src needs its key, as a run would."""
    with _diffio.open_diff(src, key) as reader:
        reader.check_key()
        summary = _diffio.verify(reader)
        return dict(changed=True, sha1=summary['sha1'], **_counts(summary, reader.header.chunk_size))


def lock(vg, name):
    """Hold the lock of vg/name for the block; fail at once if another run holds it."""
    return _lock.held('lvpatch@%s@%s.lock' % (vg, name), lock_dir=LOCK_DIR,  # '@' is in no LVM name
                      busy='another lvpatch is restoring %s/%s; wait for it to finish, then run again'
                           % (vg, name))


def _restore(lvm, reader, src, t, check_mode, lvs):
    vg, name = t['vg'], t['name']
    header = reader.header
    if lvs is None:
        lvs = lvm.lvs(vg)
    result = {'changed': True, 'lv': name, 'path': '/dev/%s/%s' % (vg, name), 'format': header.format,
              'volume_size': header.volume['size'], 'pairs': header.pairs, 'origin_uuid': header.volume['uuid'],
              'permission': t['permission'], 'active': t['activate'], 'base_checked': False}

    if name in lvs:  # made from this diff? Its SHA-1 tells, with or without the key
        summary = _diffio.verify(reader)
        _refuse_foreign(vg, lvs[name], 'this diff', summary['sha1'])
        result.update(sha1=summary['sha1'], **_counts(summary, header.chunk_size))
        return _existing(lvm, lvs[name], t, check_mode, result)

    reader.check_key()  # before anything is looked up or made
    if header.incremental:
        if not t['base']:
            raise LvdiffError('this diff is incremental: give base, the volume holding the state of %s (uuid %s)'
                              % (header.base.get('name') or 'its base', header.base['uuid']))
        base = thin_in(lvs, vg, t['base'], 'base volume')
        origin = base.tag_value(TAG_ORIGIN)
        if origin is not None and origin != header.base['uuid']:
            raise BaseMismatchError('base %s/%s is a replica of volume %s, but this diff was made against volume '
                                    '%s (%s): wrong base' % (vg, base.name, origin, header.base['uuid'],
                                                             header.base.get('name') or '?'))
        pool = pool_in(lvs, vg, base.pool, of=base.name)
    else:
        if t['base']:
            raise LvdiffError('this diff is a full image: it needs pool, not base')
        if not t['pool']:
            raise LvdiffError('this diff is a full image: give pool, the thin pool to create it in')
        base = None
        pool = pool_in(lvs, vg, check_name('thin pool', t['pool']))
    _diffio.check_target(header, pool.chunk_size)
    if header.volume['size'] % pool.extent_size:
        raise LvdiffError('the volume size %d is not a multiple of volume group %s\'s extent size %d'
                          % (header.volume['size'], vg, pool.extent_size))
    needed = os.path.getsize(src)
    if pool.free_bytes < needed:
        raise LvdiffError('thin pool %s/%s has %d bytes free, the diff may need up to %d; extend the pool'
                          % (vg, pool.name, pool.free_bytes, needed))

    if check_mode:
        summary = _diffio.verify(reader)
        result.update(sha1=summary['sha1'], **_counts(summary, header.chunk_size))
        # Check mode activates nothing (as lvdiff): an inactive base cannot be read.
        if base is not None and t['base_check'] and base.active:
            _check_base_only(src, base, t['key'])
            result['base_checked'] = True
        return result

    t['progress'].start('applying', needed)
    summary = _build(lvm, t, base, pool, lvs, header.volume['uuid'], header.volume['size'],
                     lambda made, size: _patch_onto(lvm, reader, made, size, t['base_check'], pool.chunk_size,
                                                    t['progress'])[0])
    result.update(sha1=summary['sha1'], base_checked=base is not None and t['base_check'],
                  **_counts(summary, header.chunk_size))
    return result


def _restore_chain(lvm, root, chain, t, check_mode):
    vg, name, newest = t['vg'], t['name'], chain[-1]
    lvs = lvm.lvs(vg)
    result = {'changed': True, 'name': name, 'path': '/dev/%s/%s' % (vg, name),
              'chain': [dict((k, b[k]) for k in ('id', 'created', 'full', 'file_size')) for b in chain],
              'origin_uuid': newest['volume_uuid'], 'volume_size': newest['volume_size'],
              'permission': t['permission'], 'active': t['activate']}
    existing = lvs.get(name)
    if existing is None:
        pool = _chain_pool(lvs, vg, t['pool'], chain)  # the quick refusals before the long read
    t['progress'].start('verifying', sum(b['file_size'] for b in chain))
    verified = _repository.verify_chain(root, chain, t['progress'], t['key'], decode=True if existing is None else None)
    sha1 = verified['sha1s'][-1]
    result.update(sha1=sha1, bytes=verified['bytes'], **_chain_counts(verified['summaries'], chain[0]['chunk_size']))
    if existing is not None:
        _refuse_foreign(vg, existing, newest['id'], sha1, newest['volume_uuid'])
        return _existing(lvm, existing, t, check_mode, result)
    if check_mode:
        return result
    t['progress'].start('applying', verified['bytes'])
    _build(lvm, t, None, pool, lvs, newest['volume_uuid'], chain[0]['volume_size'],
           lambda made, size: _apply_chain(lvm, root, chain, verified['sha1s'], pool.chunk_size, made, size,
                                           t['progress'], t['key']))
    return result


def _chain_pool(lvs, vg, name, chain):
    """The thin pool vg/name, if the chain can be restored in it: its chunk size, vg's extents, its space."""
    pool = pool_in(lvs, vg, name)
    if pool.chunk_size != chain[0]['chunk_size']:
        raise LvdiffError('chunk size mismatch: the chain was made on a pool with %d KiB chunks, thin pool %s/%s '
                          'has %d KiB chunks; restore into a pool with %d KiB chunks'
                          % (chain[0]['chunk_size'] // 1024, vg, name, pool.chunk_size // 1024,
                             chain[0]['chunk_size'] // 1024))
    for backup in chain:  # every size the temporary volume takes
        if backup['volume_size'] % pool.extent_size:
            raise LvdiffError('%s: the volume size %d is not a multiple of volume group %s\'s extent size %d'
                              % (backup['id'], backup['volume_size'], vg, pool.extent_size))
    # One volume, not shared: rewriting a chunk it already maps takes no new space.
    needed = min(sum(b['file_size'] for b in chain), max(b['volume_size'] for b in chain))
    if pool.free_bytes < needed:
        raise LvdiffError('thin pool %s/%s has %d bytes free, the chain may need up to %d; extend the pool'
                          % (vg, name, pool.free_bytes, needed))
    return pool


def _apply_chain(lvm, root, chain, sha1s, chunk_size, made, size, progress, key=None):
    """Apply every file of chain in order onto the temporary volume made; the newest file's summary."""
    before = 0
    for backup, sha1 in zip(chain, sha1s):
        with _repository.open_backup(root, backup, key) as reader:
            try:
                summary, size = _patch_onto(lvm, reader, made, size, True, chunk_size, progress, before)
            except (FormatError, BaseMismatchError) as e:
                raise type(e)('%s: %s' % (backup['id'], e.msg))
        # Rewritten in place since verify_chain read it: what was applied is not what was verified.
        if summary['sha1'] != sha1:
            raise LvdiffError('%s: changed since it was verified (SHA-1 %s then, %s now); nothing was kept'
                              % (backup['id'], sha1, summary['sha1']))
        before += summary['size']
    return summary


def _build(lvm, t, base, pool, lvs, origin_uuid, size, fill):
    """The new volume: the temporary volume made (a snapshot of base, or size bytes in pool), filled by
    fill(made, its size) - which returns the summary of the last diff it applied -, its final state, its
    name. That summary."""
    vg, name = t['vg'], t['name']
    # Tags known before the data are given by the lvcreate; the diff's own tag and the final state by one
    # lvchange once the data is in (a snapshot may inherit its base's tags on some LVM versions: those of
    # ours go then); deactivated at once, or with the caller's others (t['later']) after the rename.
    early = [TAG_ORIGIN + origin_uuid] + list(t['tags'])
    later = [] if t['later'] is not None else None
    with lvm.scratch_volume(vg, name, lvs) as tmp:
        if base is not None:
            lvm.snapshot(vg, base.name, tmp, tags=early)
            size, inherited = base.size, [tag for tag in base.tags if tag.startswith((TAG_ORIGIN, TAG_DIFF))]
        else:
            lvm.create_thin(vg, pool.name, tmp, size, tags=early)
            inherited = []
        # What lvcreate made, without another lvs: writable, active (unless LVM's activation settings kept
        # it inactive: then it is looked up and activated), with our early tags.
        made = LV({'lv_name': tmp, 'vg_name': vg, 'pool_lv': pool.name, 'lv_uuid': '', 'lv_size': str(size),
                   'chunk_size': '0', 'lv_attr': 'Vwi-a-tz--', 'lv_tags': ','.join(early),
                   'lv_path': device_path(vg, tmp)})
        if not os.path.exists(made.path):
            made = lvm.lvs(vg)[tmp]
            lvm.activate(made)
        summary = fill(made, size)
        mark = TAG_DIFF + summary['sha1']
        # Its final state before it gets its name: a failure in between leaves only the temporary volume.
        finish(lvm, made, [mark], permission=t['permission'], activate=t['activate'], later=later,
               remove=[tag for tag in inherited if tag not in early and tag != mark])
    if later:
        t['later'].append(name)
    return summary


def _patch_onto(lvm, reader, made, size, base_check, chunk_size, progress=NO_PROGRESS, before=0):
    """Apply reader's diff onto the temporary volume made, now size bytes, resized to the diff's volume
    size (grown before the writes, shrunk after them). (The summary of the diff, the new size.)"""
    wanted = reader.header.volume['size']
    if wanted > size:
        lvm.resize(made.vg, made.name, wanted)
    summary = _apply(reader, made.path, base_check, chunk_size, progress, before)
    if wanted < size:
        lvm.resize(made.vg, made.name, wanted)
    return summary, wanted


def _refuse_foreign(vg, existing, source, sha1, origin=None):
    """vg/name exists: only the diff file source (its sha1, its volume's uuid origin if given) may already
    have made it; anything else is someone's data."""
    made_by = existing.tag_value(TAG_DIFF)
    if made_by != sha1:
        raise LvdiffError('volume %s/%s already exists and was not made from %s (%s); '
                          'choose another name or remove it'
                          % (vg, existing.name, source, 'it has no tag %s' % TAG_DIFF if made_by is None
                             else 'its tag is %s%s' % (TAG_DIFF, made_by)))
    of = existing.tag_value(TAG_ORIGIN)
    if origin is not None and of != origin:
        raise LvdiffError('volume %s/%s already exists and was not made from %s (%s%s%s); '
                          'choose another name or remove it'
                          % (vg, existing.name, source, 'it has no tag ' if of is None
                             else 'its tag is %s%s, not ' % (TAG_ORIGIN, of), TAG_ORIGIN, origin))


def _existing(lvm, existing, t, check_mode, result):
    """vg/name exists and was made from what the caller restores: it gets the tags it lacks."""
    # Permission and activation are for the volume this module makes, unless refinish says otherwise.
    state = dict(permission=t['permission'], activate=t['activate']) if t['refinish'] else {}
    changed = finish(lvm, existing, t['tags'], check_mode=check_mode, later=t['later'], **state)
    result.update(changed=changed, path=existing.path,
                  permission=t['permission'] if state else ('r' if existing.read_only else 'rw'),
                  active=t['activate'] if state else existing.active)
    return result


def finish(lvm, lv, tags=(), permission=None, activate=None, check_mode=False, remove=(), later=None):
    """Give lv its final state with what it lacks, and say whether anything was (or in check mode would
    be) changed: tags added if missing (remove: tags to delete); permission V(r) or V(rw); activate false:
    the activation skip flag set and inactive (activate it with lvchange -ay -K), true: left as it is.
    None leaves that alone. One lvchange for tags, permission and flag; the deactivation then, or, with
    later, lv's name put on that list for the caller's one lvchange for many volumes."""
    add = [check_tag(tag) for tag in tags if tag not in lv.tags]
    remove = [check_tag(tag) for tag in remove]
    if permission is not None and (permission == 'r') == lv.read_only:
        permission = None  # it has it
    skip = True if activate is False and lv.attr[9] != 'k' else None
    change = bool(add or remove or permission or skip)
    deactivate = activate is False and lv.active
    if not check_mode:
        if change:
            lvm.change(lv.vg, lv.name, add, remove, permission, skip)
        if deactivate and later is not None:
            later.append(lv.name)
        elif deactivate:
            lvm.deactivate(lv)
    return change or deactivate


def _apply(reader, device, base_check, chunk_size, progress, before):
    try:
        fd = os.open(device, os.O_RDWR)
    except OSError as e:
        raise LvdiffError('cannot open %s: %s' % (device, e.strerror))
    try:
        # No verify pass first: a corrupt or truncated file is found while writing the temporary volume,
        # which is then removed.
        summary = _diffio.apply(reader, fd, base_check=base_check, target_chunk_size=chunk_size, progress=progress,
                                before=before)
        os.fsync(fd)
    except OSError as e:
        raise LvdiffError('writing %s failed: %s (the thin pool may be full); nothing was kept' % (device, e))
    finally:
        os.close(fd)
    return summary


def _chain_counts(summaries, cs):
    totals = {'data_chunks': 0, 'discard_chunks': 0, 'checks': 0}
    for summary in summaries:
        for key, n in _counts(summary, cs).items():
            totals[key] += n
    return totals


def _check_base_only(src, base, key=None):
    """Check mode: run the diff's base checks against the active base, read-only."""
    try:
        fd = os.open(base.path, os.O_RDONLY)
    except OSError as e:
        raise LvdiffError('cannot open base %s: %s' % (base.path, e.strerror))
    try:
        with _diffio.open_diff(src, key) as reader:
            _diffio.verify_base(reader, fd)
    finally:
        os.close(fd)


def _counts(summary, cs):
    return {'data_chunks': ceil_div(summary['data_bytes'], cs),
            'discard_chunks': ceil_div(summary['discard_bytes'], cs),
            'checks': summary['records'].get('check', 0)}

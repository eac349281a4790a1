# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""One run of a backup of one source host's volumes into a backup repository (filter backup_run), as
_replicate's run does for replicas: the role's tasks call the batched modules (probe, repository_info,
send, prune, rotate); between them, advance() takes the state so far and what the last module returned,
and says what the next module does. A volume that fails keeps its error and takes no further part.

Identity, never names alone:
  - a backup snapshot of volume V carries TAG_BAK_SNAP and TAG_OF + V's LV UUID and is named
    '<lv>-bak-<YYYYmmddTHHMMSSZ>';
  - a repository backup is the backup of the source snapshot whose LV UUID is its header volume_uuid.

Per volume: B, the newest restorable backup. A pending snapshot (the newest one, newer than B, with no
backup: a run interrupted after taking it) is sent first, against B's snapshot if it is still there;
then a new snapshot, of the kind _retention.next_kind says, an incremental against the newest backup's
snapshot, or nothing when the probe saw no change since it.
"""

from __future__ import annotations

import copy
import datetime
import json

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.lvdiff.thin.plugins.module_utils import _repository, _retention
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError
from ansible_collections.lvdiff.thin.plugins.module_utils._replicate import (
    PlanError, TAG_BAK_SNAP, TAG_OF, TIME_FORMAT, _by_position, _fail, rows, snapshot_name, snapshots_of, stamp)

SNAP_INFIX = '-bak-'
STAGES = ('start', 'probed', 'sent', 'pruned', 'rotated')
_UTC = datetime.timezone.utc


def _iso(name_time):
    return datetime.datetime.strptime(name_time, TIME_FORMAT).strftime(_repository.ISO_FORMAT)


def _policy(policy, where):
    try:
        _retention.check_policy(policy)
    except LvdiffError as e:
        raise PlanError('%s: %s' % (where, e.msg))
    return dict(policy or {})


def _volume_settings(item, defaults, host, root):
    key = '%s/%s' % (item.get('vg'), item.get('lv'))
    for name, level in ((host, 'host'), (item.get('vg'), 'VG'), (item.get('lv'), 'LV')):
        if not _repository.is_name(name):
            raise PlanError('%s: %s name %r cannot be a backup repository directory' % (key, level, name))
    keep = item.get('keep_snapshots')
    keep = defaults.get('keep_snapshots', 1) if keep is None else keep
    try:
        keep = None if isinstance(keep, bool) else int(keep)
    except (TypeError, ValueError):
        keep = None
    if keep is None or keep < 1:
        raise PlanError('%s: keep_snapshots must be a whole number of at least 1 (the base of the next '
                        'incremental is kept anyway)' % key)
    policy = item.get('policy')
    return {'vg': item['vg'], 'lv': item['lv'], 'key': key, 'error': None, 'failed_result': None,
            'policy': _policy(defaults.get('policy') if policy is None else policy, key + ': policy'),
            'keep_snapshots': keep, 'steps': [],
            'spool': '%s/%s/%s' % (defaults['spool_dir'].rstrip('/'), item['vg'], item['lv']),
            'dir': '%s/%s/%s/%s' % (root.rstrip('/'), host, item['vg'], item['lv']),
            'id_prefix': '%s/%s/%s/' % (host, item['vg'], item['lv'])}


def start(volumes, host, defaults, now=None, check_mode=False):
    """The run's state from the role's volumes ({vg, lv, policy?, keep_snapshots?}) and defaults ({root,
    spool_dir, policy, keep_snapshots, encrypted?: whether the run encrypts its files}); now (ISO UTC text,
    default the clock) names the run's snapshots."""
    for key in ('root', 'spool_dir'):
        if not defaults.get(key):
            raise PlanError('defaults.%s is required' % key)
    try:
        when = _retention.parse_time(now, 'now') if now else datetime.datetime.now(_UTC)
    except LvdiffError as e:
        raise PlanError(e.msg)
    when = when.replace(microsecond=0)
    state = {'host': host, 'root': defaults['root'], 'check_mode': bool(check_mode), 'stage': 'start',
             'encrypted': boolean(defaults.get('encrypted') or False, strict=False),
             'now': when.strftime(_repository.ISO_FORMAT), 'time': when.strftime(TIME_FORMAT),
             'volumes': [_volume_settings(dict(item), defaults, host, defaults['root']) for item in volumes]}
    seen = set()
    for v in state['volumes']:
        if v['key'] in seen:
            raise PlanError('volume %s is listed twice' % v['key'])
        seen.add(v['key'])
    state['probe'] = [{'vg': v['vg'], 'lv': v['lv']} for v in state['volumes']]
    state['repository'] = [{'host': host, 'vg': v['vg'], 'lv': v['lv']} for v in state['volumes']]
    return state


def _repository_volumes(state, info):
    """{(vg, lv): repository_info's volume entry} of this host, or a message for every volume."""
    if not isinstance(info, dict) or info.get('failed') or not isinstance(info.get('volumes'), list):
        return None, dict(info or {}, msg=(info or {}).get('msg') or 'repository_info returned no volumes')
    found = {}
    for entry in info['volumes']:
        if entry.get('host') != state['host']:
            continue
        if 'files' not in entry:
            raise PlanError('repository_info must be called with list_files=true (volume %s/%s has no files)'
                            % (entry.get('vg'), entry.get('lv')))
        found[(entry.get('vg'), entry.get('lv'))] = entry
    return found, None


def _backups(v, entry):
    """The volume's backups (repository_info's files, with time and a base _retention accepts) and the
    ids of the restorable ones; LvdiffError-like message when its backups cannot be linked."""
    if entry is None:
        return [], set()
    broken = [e['msg'] for e in entry.get('errors') or [] if e.get('id') == v['id_prefix'].rstrip('/')]
    if broken:
        raise PlanError(broken[0])
    backups = []
    for f in entry['files']:
        # An orphan's base is missing: a base id no backup has keeps _retention from taking it as restorable.
        base = None if f['full'] else f.get('base') or _repository.MISSING_BASE % '?'
        backups.append({'id': f['id'], 'time': f['created'], 'created': f['created'], 'full': f['full'],
                        'base': base, 'volume_uuid': f.get('volume_uuid'), 'encryption': f.get('encryption')})
    restorable = set(i for chain in entry.get('chains') or [] for i in chain['ids'])
    return backups, restorable


def _newest(backups, ids):
    picked = [b for b in backups if b['id'] in ids]
    return max(picked, key=lambda b: (b['created'], b['id'])) if picked else None


def probed(state, probe, repository_info):
    """Each volume's steps, from the probe (source, snapshot_tag lvdiff_bak_snap) and repository_info
    (backup host, list_files=true): resume a pending snapshot, then a new full or incremental, or nothing."""
    state = dict(state, stage='probed', send=[])
    found, repo_error = _repository_volumes(state, repository_info)
    for v, pr in _by_position(state['volumes'], (probe or {}).get('volumes'), 'probe'):
        v['probe'] = pr
        if pr.get('failed'):
            _fail(v, 'probe', pr)
            continue
        if repo_error:
            _fail(v, 'repository', repo_error)
            continue
        try:
            v['uuid'] = pr['uuid']
            snaps = snapshots_of(rows((probe.get('lvs') or {}).get(v['vg']) or []), v['uuid'], TAG_BAK_SNAP)
            v['snapshots'] = [s['name'] for s in reversed(snaps)]
            backups, restorable = _backups(v, found.get((v['vg'], v['lv'])))
            v['steps'] = _steps(state, v, pr, snaps, backups, restorable)
        except PlanError as e:
            _fail(v, 'plan', {'msg': str(e)})
            continue
        except LvdiffError as e:
            _fail(v, 'plan', {'msg': e.msg})
            continue
        if v['steps'] and not state['check_mode']:
            state['send'].append({'vg': v['vg'], 'lv': v['lv'], 'snapshot_tags': [TAG_BAK_SNAP, TAG_OF + v['uuid']],
                                  'steps': [_send_step(state, v, s) for s in v['steps']]})
    return state


def _step(state, v, kind, snapshot, create, base, time, why):
    full = base is None
    created = _iso(time)
    remote = _repository.backup_path(state['root'], state['host'], v['vg'], v['lv'], created, full)
    return {'kind': kind, 'full': full, 'snapshot': snapshot, 'create': create, 'base': base, 'created': created,
            'dest': '%s/%s.lvdiff' % (v['spool'], snapshot), 'remote': remote,
            'id': v['id_prefix'] + _repository.backup_name(created, full), 'why': why}


def _steps(state, v, pr, snaps, backups, restorable):
    by_uuid = dict((s['uuid'], s) for s in snaps)
    backed_up = set(b['volume_uuid'] for b in backups)
    newest = _newest(backups, restorable)
    newest_snap = by_uuid.get(newest['volume_uuid']) if newest else None
    v['newest_backup'] = newest and newest['id']
    v['newest_snapshot'] = newest_snap and newest_snap['name']
    steps = []
    pending = snaps[0] if snaps and snaps[0]['uuid'] not in backed_up else None
    if pending and newest and pending['time'] <= _name_stamp(newest['created']):
        pending = None  # older than the newest backup: not a run to finish, left to rotation
    if pending:
        base = newest_snap and newest_snap['name']
        why = ('interrupted run resumed, against %s' % newest['id'] if base else
               'interrupted run resumed as a full image: %s' % (
                   'no restorable backup' if newest is None else 'the snapshot of %s is gone' % newest['id']))
        steps.append(_step(state, v, 'resume', pending['name'], False, base, pending['time'], why))
        backups = backups + [{'id': steps[0]['id'], 'time': steps[0]['created'], 'full': base is None,
                              'base': newest['id'] if base else None}]
        restorable = restorable | set([steps[0]['id']])
        newest, newest_snap = backups[-1], pending
    kind, why = _retention.next_kind([dict((k, b[k]) for k in ('id', 'time', 'full', 'base')) for b in backups],
                                     v['policy'], state['now'])
    base = None
    if kind == 'incremental':
        if newest_snap is None:
            kind, why = 'full', 'the snapshot of %s, the base an incremental needs, is gone' % newest['id']
        elif newest.get('encryption') is not None and (newest['encryption'] != 'none') != state['encrypted']:
            # A key applies only what it authenticates (_diffio.open_reader): a chain is all sealed or all plain.
            kind, why = 'full', 'encryption switched %s since %s: a chain is all encrypted or all plain' % (
                'on' if state['encrypted'] else 'off', newest['id'])
        else:
            base = newest_snap['name']
            unchanged = pr.get('changed_since') is False and pr.get('since') == base
            if unchanged and not steps:
                v['unchanged'] = base
                return steps
    steps.append(_step(state, v, kind, snapshot_name(v['lv'], state['time'], SNAP_INFIX), True, base,
                       state['time'], why))
    return steps


def _name_stamp(created):
    return _repository.parse_time(created).strftime(TIME_FORMAT)


def _send_step(state, v, s):
    return {'snapshot': s['snapshot'], 'create': s['create'], 'base': s['base'], 'dest': s['dest'],
            'remote': s['remote'], 'created': s['created'],
            'pairs': dict(zip(_repository.PAIR_KEYS, (state['host'], v['vg'], v['lv'])))}


def _skipped(result):
    return not result or result.get('skipped')


def sent(state, send):
    """Record what send did (a step listed in its result reached the repository); then the prune calls,
    one per policy: every volume without error (a changed policy prunes even when nothing was sent)."""
    state = dict(state, stage='sent', source_after=(send or {}).get('lvs') or {})
    if state['send'] and not _skipped(send):
        sending = [v for v in state['volumes'] if v['error'] is None and v['steps']]
        for v, res in _by_position(sending, send.get('volumes'), 'send'):
            for s, r in zip(v['steps'], res.get('steps') or []):
                s['sent'] = r
            if res.get('failed'):
                _fail(v, 'send', res)
    elif state['send']:
        for v in state['volumes']:
            if v['error'] is None and v['steps']:
                _fail(v, 'send', send or {'msg': 'send did not run'})
    groups = {}
    state['prune'] = []
    for v in state['volumes']:
        if v['error'] is not None:
            continue
        key = json.dumps(v['policy'], sort_keys=True)
        if key not in groups:
            groups[key] = len(state['prune'])
            state['prune'].append({'policy': v['policy'], 'volumes': []})
        v['prune_at'] = (groups[key], len(state['prune'][groups[key]]['volumes']))
        state['prune'][groups[key]]['volumes'].append({'host': state['host'], 'vg': v['vg'], 'lv': v['lv']})
    return state


def _prune_results(state, prune):
    """One prune result per prune call: a registered loop ({results: [...]}), a list, or one result."""
    if _skipped(prune):
        return None
    if isinstance(prune, dict) and isinstance(prune.get('results'), list):
        prune = prune['results']
    if isinstance(prune, dict):
        prune = [prune]
    if len(prune) != len(state['prune']):
        raise PlanError('prune returned %d results for %d calls' % (len(prune), len(state['prune'])))
    return prune


def pruned(state, prune):
    """Record what prune removed; then rotation: the source snapshots no longer needed, and the spool
    directories of the volumes whose steps all arrived."""
    state = dict(state, stage='pruned')
    results = _prune_results(state, prune)
    for v in state['volumes']:
        if 'prune_at' not in v or results is None:
            continue
        call, index = v['prune_at']
        res = results[call]
        if res.get('skipped'):
            continue
        if res.get('failed') and not res.get('volumes'):
            _fail(v, 'prune', res)
            continue
        vres = _by_position(state['prune'][call]['volumes'], res.get('volumes'), 'prune')
        r = list(vres)[index][1]
        v['pruned'] = list(r.get('pruned') or [])
        if r.get('failed'):
            _fail(v, 'prune', r)
    rot = {'remove': [], 'sweep': []}
    owners = []
    for v in state['volumes']:
        if 'snapshots' not in v:  # probe or repository failed: what the volume has is not known
            continue
        for name in _rotation(state, v):
            rot['remove'].append({'vg': v['vg'], 'lv': name, 'tag': TAG_BAK_SNAP})
            owners.append(v['key'])
        if v['steps'] and all('sent' in s for s in v['steps']):
            rot['sweep'].append(v['spool'])
    state['rotate'], state['rotate_owners'] = rot, owners
    return state


def _rotation(state, v):
    """The volume's backup snapshots to remove: all but the newest keep_snapshots, the snapshot of the
    newest backup that reached the repository (the next incremental's base) and a pending one."""
    after = state['source_after'].get(v['vg'])
    if after is not None and v['steps'] and not state['check_mode']:
        snaps = snapshots_of(rows(after), v['uuid'], TAG_BAK_SNAP)
    else:
        snaps = [{'name': n, 'time': stamp(n)} for n in reversed(v['snapshots'])]
    keep = set(s['name'] for s in snaps[:v['keep_snapshots']])
    arrived = [s for s in v['steps'] if 'sent' in s]
    base = arrived[-1]['snapshot'] if arrived else v['newest_snapshot']
    if base:
        keep.add(base)
    if v['steps'] and not state['check_mode'] and len(arrived) < len(v['steps']):
        keep.update(s['snapshot'] for s in v['steps'])  # a failed send resumes them next run
    if snaps and snaps[0]['name'] != base and (not base or snaps[0]['time'] > stamp(base)):
        keep.add(snaps[0]['name'])  # pending: newer than the newest backup, not sent yet
    return [s['name'] for s in reversed(snaps) if s['name'] not in keep]


def rotated(state, rotate=None):
    """The role's results, one per volume, and the failed ones."""
    state = dict(state, stage='rotated')
    items = state['rotate']['remove']
    by_key = dict((v['key'], v) for v in state['volumes'])
    if items and not _skipped(rotate):
        if rotate.get('failed') and not rotate.get('remove'):
            for key in set(state['rotate_owners']):
                _fail(by_key[key], 'rotate', rotate)
        else:
            for (item, r), key in zip(_by_position(items, rotate.get('remove'), 'rotate'), state['rotate_owners']):
                if r.get('failed'):
                    _fail(by_key[key], 'rotate', r)
                elif r.get('removed'):
                    by_key[key].setdefault('removed', []).append(item['lv'])
    state['results'] = [_result(state, v) for v in state['volumes']]
    state['failed'] = [r for r in state['results'] if r['status'] == 'failed']
    return state


def _report_step(state, s):
    r = s.get('sent') or {}
    seconds = float(r.get('seconds') or 0)
    sent_bytes = int(r.get('bytes_sent') or 0)
    out = {'kind': s['kind'], 'full': s['full'], 'snapshot': s['snapshot'], 'base': s['base'], 'file': s['remote'],
           'created': s['created'], 'why': s['why'], 'sent': 'sent' in s, 'size': r.get('size'),
           'bytes_sent': sent_bytes, 'resumed_from': int(r.get('resumed_from') or 0), 'seconds': seconds,
           'rate': int(sent_bytes / seconds) if seconds else 0}
    what = '%s %s%s' % (s['kind'], s['snapshot'], ' against %s' % s['base'] if s['base'] else '')
    if state['check_mode']:
        out['summary'] = 'would send %s -> %s' % (what, s['remote'])
    elif 'sent' in s:
        resumed = ' (resumed at byte %d)' % out['resumed_from'] if out['resumed_from'] else ''
        out['summary'] = '%s: %d bytes sent%s in %.1f s -> %s' % (what, sent_bytes, resumed, seconds, s['remote'])
    else:
        out['summary'] = '%s: not sent' % what
    return out


def _result(state, v):
    steps = [_report_step(state, s) for s in v.get('steps') or []]
    removed = v.get('removed', [])
    if state['check_mode']:
        removed = [i['lv'] for i, k in zip(state['rotate']['remove'], state['rotate_owners']) if k == v['key']]
    pruned_ids = v.get('pruned') or []
    parts = [s['summary'] for s in steps]
    if v.get('unchanged'):
        parts.append('unchanged since %s' % v['unchanged'])
    if pruned_ids:
        parts.append('%s %d backup(s)' % ('would prune' if state['check_mode'] else 'pruned', len(pruned_ids)))
    if removed:
        parts.append('%s %d snapshot(s)' % ('would remove' if state['check_mode'] else 'removed', len(removed)))
    out = {'vg': v['vg'], 'lv': v['lv'], 'volume': v['key'], 'steps': steps,
           'bytes_sent': sum(s['bytes_sent'] for s in steps), 'pruned': pruned_ids, 'removed': removed,
           'backup': v.get('newest_backup')}
    arrived = [s for s in v.get('steps') or [] if 'sent' in s]
    if arrived:
        out['backup'] = arrived[-1]['id']
    if v['error'] is not None:
        out.update(status='failed', changed=bool(arrived or pruned_ids or removed), error=v['error'],
                   failed_result=v['failed_result'], summary='%s: FAILED: %s' % (v['key'], v['error']))
        return out
    changed = bool(steps) if state['check_mode'] else bool(arrived or pruned_ids or removed)
    out.update(status='check' if state['check_mode'] else 'ok', changed=changed,
               summary='%s: %s' % (v['key'], '; '.join(parts) or 'nothing to do'))
    return out


_ADVANCE = {'start': start, 'probed': probed, 'sent': sent, 'pruned': pruned, 'rotated': rotated}


def advance(state, stage, *args, **kwargs):
    """The state after stage (one of STAGES), from the state before and what the last module returned."""
    if stage not in _ADVANCE:
        raise PlanError('unknown stage %r (one of %s)' % (stage, ', '.join(STAGES)))
    return _ADVANCE[stage](copy.deepcopy(state), *args, **kwargs)

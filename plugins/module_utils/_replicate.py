# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The replicate role's decisions, from the ``lvs`` reports of a source and a target VG:
which snapshots and replicas belong to a volume, the newest snapshot both sides have,
a pending snapshot to finish, replicas to finish (tags, read-only), and what rotation removes.

Identity, never names alone:
  - a source snapshot belongs to volume V when it carries TAG_SNAP and TAG_OF + V's LV UUID;
  - a replica belongs to V when it carries TAG_REPLICA and TAG_OF + V's UUID, or, untagged
    (lvpatch done, tagging interrupted), when its name is the replica name of one of V's
    snapshots and its ``lvdiff_origin:`` tag (set by lvpatch) is that snapshot's UUID;
  - a snapshot and a replica match when the replica's ``lvdiff_origin:`` is the snapshot's UUID.
"""

from __future__ import annotations

import copy
import datetime
import json
import re

from ansible_collections.lvdiff.thin.plugins.module_utils import _lvm
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError
from ansible_collections.lvdiff.thin.plugins.module_utils._lvm import TAG_ORIGIN, TMP_SUFFIX

TAG_SNAP = 'lvdiff_rep_snap'
TAG_REPLICA = 'lvdiff_rep_replica'
TAG_OF = 'lvdiff_rep_of:'
TAG_BAK_SNAP = 'lvdiff_bak_snap'  # the backup role's snapshots (module_utils/_backuprun.py)
SNAP_INFIX = '-rep-'
TIME_FORMAT = '%Y%m%dT%H%M%SZ'
_TIME = re.compile(r'-(\d{8}T\d{6}Z)$')
_NAME_MAX = 127


class PlanError(Exception):
    pass


def rows(report):
    """Rows of an ``lvs --reportformat json`` report, given as text, dict or list of rows."""
    if isinstance(report, (str, bytes)):
        try:
            report = json.loads(report)
        except ValueError as e:
            raise PlanError('cannot parse the lvs report: %s' % e)
    if isinstance(report, dict):
        try:
            report = report['report'][0]['lv']
        except (KeyError, IndexError, TypeError):
            raise PlanError('not an lvs JSON report: %r' % (report,))
    return [dict(r, tags=[t for t in (r.get('lv_tags') or '').split(',') if t]) for r in report]


def tag_value(row, prefix):
    for t in row['tags']:
        if t.startswith(prefix):
            return t[len(prefix):]
    return None


def stamp(name):
    m = _TIME.search(name)
    return m.group(1) if m else ''


def safe_name_part(text):
    """text with every character LVM does not allow in names replaced by '_'."""
    out = re.sub(r'[^A-Za-z0-9+_.-]', '_', text)
    return '_' + out if out.startswith('-') or not out else out


def check_name(kind, name, reserve=0):
    """LVM's name rules (_lvm's), with room left for what is appended to name later."""
    try:
        _lvm.check_name(kind, name)
        ok = len(name) <= _NAME_MAX - reserve
    except LvdiffError:
        ok = False
    if not ok:
        raise PlanError('%s %r is not a valid LVM name (letters, digits, + _ . -; at most %d characters here)'
                        % (kind, name, _NAME_MAX - reserve))
    return name


def snapshot_name(lv, time, infix=SNAP_INFIX):
    return check_name('snapshot name', '%s%s%s' % (lv, infix, time))


def default_prefix(host, vg, lv):
    return '%s-%s-%s' % (safe_name_part(host), vg, lv)


def replica_name(prefix, time):
    return check_name('replica name', '%s-%s' % (prefix, time), reserve=len(TMP_SUFFIX))


def _newest_first(items):
    return sorted(items, key=lambda x: (x['time'], x['name']), reverse=True)


def snapshots_of(src_rows, uuid, tag=TAG_SNAP):
    """The role's snapshots (those tagged tag) of the volume with LV UUID uuid, newest first (the first
    is the one a new diff starts from: the pending snapshot, or else the last common one)."""
    snaps = []
    for r in src_rows:
        if tag in r['tags'] and tag_value(r, TAG_OF) == uuid and stamp(r['lv_name']):
            snaps.append({'name': r['lv_name'], 'uuid': r['lv_uuid'], 'time': stamp(r['lv_name']),
                          'size': int(r['lv_size'] or 0), 'replica': None})
    return _newest_first(snaps)


def plan(source_report, target_report, vg, lv, host, keep_source=2, keep_target=7, prefix=None):
    """Everything the role decides for one volume; see the module docstring."""
    if keep_source < 1 or keep_target < 1:
        raise PlanError('keep_source and keep_target must be at least 1 (the last common snapshot is always kept)')
    src_rows = rows(source_report)
    vol = next((r for r in src_rows if r['lv_name'] == lv), None)
    if vol is None:
        raise PlanError('volume %s/%s does not exist on %s' % (vg, lv, host))
    if not vol.get('pool_lv') or vol['lv_attr'][:1] != 'V':
        raise PlanError('volume %s/%s on %s is not a thin volume (lv_attr %s)' % (vg, lv, host, vol['lv_attr']))
    if TAG_SNAP in vol['tags'] or TAG_REPLICA in vol['tags']:
        raise PlanError('%s/%s on %s is a snapshot or replica made by this role; give the volume itself'
                        % (vg, lv, host))
    uuid = vol['lv_uuid']
    prefix = check_name('replica prefix', prefix or default_prefix(host, vg, lv), reserve=len(TMP_SUFFIX) + 17)

    snaps = snapshots_of(src_rows, uuid)
    by_uuid = dict((s['uuid'], s) for s in snaps)
    expected = dict((replica_name(prefix, s['time']), s) for s in snaps)

    replicas = []
    for r in rows(target_report):
        name = r['lv_name']
        if name.endswith(TMP_SUFFIX) or r['lv_attr'][:1] != 'V':
            continue
        origin = tag_value(r, TAG_ORIGIN)
        tagged = TAG_REPLICA in r['tags'] and tag_value(r, TAG_OF) == uuid
        orphan = (not tagged and TAG_REPLICA not in r['tags'] and name in expected
                  and origin == expected[name]['uuid'])
        if tagged or orphan:
            replicas.append({'name': name, 'uuid': r['lv_uuid'], 'origin': origin, 'tagged': tagged,
                             'time': stamp(name) or (by_uuid[origin]['time'] if origin in by_uuid else ''),
                             'read_only': r['lv_attr'][1:2] == 'r'})
    replicas = _newest_first(replicas)
    for rep in replicas:
        snap = by_uuid.get(rep['origin'])
        if snap is not None and snap['replica'] is None:
            snap['replica'] = rep['name']

    common = next((s for s in snaps if s['replica']), None)
    pending = None
    if snaps and snaps[0]['replica'] is None:
        pending = dict(snaps[0], replica=replica_name(prefix, snaps[0]['time']))

    keep_snaps = set(s['name'] for s in snaps[:keep_source])
    keep_reps = set(r['name'] for r in replicas[:keep_target])
    if common is not None:
        keep_snaps.add(common['name'])
        keep_reps.add(common['replica'])
    if pending is not None:
        keep_snaps.add(pending['name'])
    return {
        'volume': {'vg': vg, 'name': lv, 'uuid': uuid, 'size': int(vol['lv_size'] or 0), 'pool': vol['pool_lv']},
        'prefix': prefix,
        'snapshots': list(reversed(snaps)),
        'replicas': list(reversed(replicas)),
        'common': None if common is None else {
            'snapshot': common['name'], 'uuid': common['uuid'], 'size': common['size'], 'replica': common['replica']},
        'pending': pending,
        'unfinished': [r['name'] for r in reversed(replicas) if not r['tagged'] or not r['read_only']],
        'tags': [TAG_REPLICA, TAG_OF + uuid],
        'snapshot_tags': [TAG_SNAP, TAG_OF + uuid],
        'delete_source': [s['name'] for s in reversed(snaps) if s['name'] not in keep_snaps],
        'delete_target': [r['name'] for r in reversed(replicas) if r['name'] not in keep_reps],
    }


# ---------------------------------------------------------------------------------------------
# One run of the role on one source host, all its volumes at once (filter replicate_run). The
# role's tasks call the batched modules; between them, advance() takes the state so far and what
# the last module returned, and says what the next module does. Every decision is made here.
# A volume that fails at any stage keeps its error and takes no further part; the others go on.

STAGES = ('start', 'probed', 'sent', 'relayed', 'received', 'rotated')


def _volume_settings(item, defaults, host):
    v = {'vg': item.get('vg'), 'lv': item.get('lv'), 'error': None, 'failed_result': None,
         'target_vg': item.get('target_vg') or defaults['target_vg'],
         'target_pool': item.get('target_pool') or defaults['target_pool'],
         'keep_source': int(item.get('keep_source') or defaults['keep_source']),
         'keep_target': int(item.get('keep_target') or defaults['keep_target']),
         'prefix': item.get('replica_prefix') or None}
    v['key'] = '%s/%s' % (v['vg'], v['lv'])
    v['spool'] = '%s/%s/%s' % (defaults['spool_dir'].rstrip('/'), v['vg'], v['lv'])
    v['target_spool'] = '%s/%s/%s/%s' % (defaults['target_spool_dir'].rstrip('/'), host, v['vg'], v['lv'])
    return v


def _fail(v, where, result):
    if v['error'] is None:
        msg = result.get('msg') or 'failed'
        stderr = (result.get('stderr') or '').strip()
        v['error'] = '%s: %s%s' % (where, msg, ': %s' % stderr if stderr and stderr not in msg else '')
        v['failed_result'] = result


def _live(state):
    return [v for v in state['volumes'] if v['error'] is None]


def _by_position(items, results, where):
    """Pair the items a batched module was given with its per-item results (same order, by contract)."""
    results = list(results or [])
    if len(results) != len(items):
        raise PlanError('%s returned %d results for %d items' % (where, len(results), len(items)))
    return zip(items, results)


def start(volumes, host, defaults, transfer='direct', keep_diffs=False, check_mode=False):
    """The run's state from replicate_volumes: each volume with the role's defaults applied; what the
    probe reads (every volume) and which target VGs the target's lvs reads."""
    state = {'host': host, 'transfer': transfer, 'keep_diffs': bool(keep_diffs), 'check_mode': bool(check_mode),
             'stage': 'start', 'volumes': [_volume_settings(dict(item), defaults, host) for item in volumes]}
    state['probe'] = [{'vg': v['vg'], 'lv': v['lv']} for v in state['volumes']]
    state['target_vgs'] = sorted(set(v['target_vg'] for v in state['volumes']))
    return state


def _target_rows(target_lvs, vgs):
    """{vg: rows} from the target's one lvs over several VGs (its JSON on stdout, rc and stderr):
    a VG LVM did not find has an error instead of rows."""
    found, errors = {}, {}
    try:
        for r in rows(target_lvs.get('stdout') or '{"report": [{"lv": []}]}'):
            found.setdefault(r.get('vg_name'), []).append(r)
    except PlanError as e:
        return {}, dict((vg, str(e)) for vg in vgs)
    if target_lvs.get('rc', 0) != 0:
        # stderr (lvm2 2.03.16) or the JSON report's command log (2.03.31) tells why
        err = _lvm.failure_text(target_lvs.get('stdout') or '', target_lvs.get('stderr') or '')
        for vg in vgs:
            if 'Volume group "%s" not found' % vg in err:
                errors[vg] = 'volume group %s does not exist on the target' % vg
            elif vg not in found:
                errors[vg] = 'lvs failed on the target: %s' % err.strip()
    return found, errors


def probed(state, probe, target_lvs, time=None):
    """Decide each volume's steps from the probe (source) and the target's lvs: resume a pending
    snapshot, then catch up with changes since it; or a full image; or an incremental from the last
    common snapshot; or nothing (unchanged). Names the new snapshot and replica."""
    time = time or datetime.datetime.now(datetime.timezone.utc).strftime(TIME_FORMAT)
    state = dict(state, stage='probed', time=time, send=[])
    target, target_errors = _target_rows(target_lvs, state['target_vgs'])
    for v, pr in _by_position(state['volumes'], probe.get('volumes'), 'probe'):
        v['probe'] = pr
        if pr.get('failed'):
            try:  # the plan's own refusal when it has one (e.g. no such volume: it names the host)
                plan(probe.get('lvs', {}).get(v['vg'], []), [], v['vg'], v['lv'], state['host'],
                     v['keep_source'], v['keep_target'], v['prefix'])
            except PlanError as e:
                _fail(v, 'plan', {'msg': str(e)})
            _fail(v, 'probe', pr)
            continue
        if v['target_vg'] in target_errors:
            _fail(v, 'target', {'msg': target_errors[v['target_vg']]})
            continue
        try:
            v['plan'] = plan(probe['lvs'].get(v['vg'], []), target.get(v['target_vg'], []), v['vg'], v['lv'],
                             state['host'], v['keep_source'], v['keep_target'], v['prefix'])
            v['steps'] = _steps(v, pr, time)
        except PlanError as e:
            _fail(v, 'plan', {'msg': str(e)})
            continue
        if v['steps'] and not state['check_mode']:
            state['send'].append(_send_item(state, v))
    return state


def _steps(v, pr, time):
    p = v['plan']
    common, pending = p['common'], p['pending']
    newest = pending['name'] if pending else common['snapshot'] if common else None
    # The probe compared the volume with its newest snapshot; if that is not the one the plan found
    # newest (a snapshot made or removed in between), assume changes: an empty diff is harmless.
    changed = pr.get('changed_since', True) or pr.get('since') != newest
    steps = []
    if pending:
        steps.append({'kind': 'resume', 'snapshot': pending['name'], 'create': False,
                      'base': common['snapshot'] if common else None, 'replica': pending['replica'],
                      'base_replica': common['replica'] if common else None})
    if changed or not (pending or common):
        base = steps[-1] if steps else common and {'snapshot': common['snapshot'], 'replica': common['replica']}
        steps.append({'kind': 'incremental' if base else 'full', 'snapshot': snapshot_name(v['lv'], time),
                      'create': True, 'base': base['snapshot'] if base else None,
                      'replica': replica_name(p['prefix'], time), 'base_replica': base['replica'] if base else None})
    for s in steps:
        s['dest'] = '%s/%s.lvdiff' % (v['spool'], s['snapshot'])
        s['remote'] = '%s/%s.lvdiff' % (v['target_spool'], s['replica'])
    return steps


def _send_item(state, v):
    steps = []
    for s in v['steps']:
        step = {'snapshot': s['snapshot'], 'create': s['create'], 'base': s['base'], 'dest': s['dest'],
                'pairs': {'replicate_host': state['host'], 'replicate_volume': v['key'], 'replica': s['replica']}}
        if state['transfer'] == 'direct':
            step['remote'] = s['remote']
        steps.append(step)
    return {'vg': v['vg'], 'lv': v['lv'], 'snapshot_tags': v['plan']['snapshot_tags'], 'steps': steps}


def sent(state, send):
    """Record what send did; the steps that reached the target (direct) go to receive; in relay mode,
    the files the controller carries next."""
    state = dict(state, stage='sent', relay=[], source_after=(send or {}).get('lvs') or {})
    sending = [v for v in state['volumes'] if v['error'] is None and v.get('steps')] if state['send'] else []
    for v, res in _by_position(sending, (send or {}).get('volumes'), 'send'):
        done = [r for r in res.get('steps') or [] if not r.get('failed')]
        for s, r in zip(v['steps'], done):
            s['sent'] = r
        if res.get('failed'):
            _fail(v, 'send', res)
        if state['transfer'] == 'relay':
            state['relay'] += [{'src': s['sent']['dest'], 'sha1': s['sent']['sha1'], 'dest': s['remote']}
                               for s in v['steps'] if 'sent' in s]
    return _receive_list(state)


def relayed(state, transfer):
    """Record the controller's transfers (relay mode): a step reached the target when its file did."""
    state = dict(state, stage='relayed')
    files = (transfer or {}).get('files') or []
    by_dest = dict((item['dest'], r) for item, r in _by_position(state['relay'], files, 'transfer'))
    for v in state['volumes']:
        for s in v.get('steps') or []:
            r = by_dest.get(s['remote'])
            if r is None:
                continue
            s['relayed'] = r
            if r.get('failed'):
                _fail(v, 'transfer', r)
    return _receive_list(state)


def _arrived(state, s):
    if 'sent' not in s:
        return False
    if state['transfer'] == 'relay':
        return 'relayed' in s and not s['relayed'].get('failed')
    return True


def _receive_list(state):
    """receive's volumes: every volume with a plan (replicas to finish), with the steps that arrived,
    in order, up to the first that did not."""
    state['receive'] = []
    if state['check_mode']:
        return state
    for v in state['volumes']:
        if 'plan' not in v:
            continue
        steps = []
        for s in v['steps']:
            if not _arrived(state, s):
                break
            steps.append({'src': s['remote'], 'name': s['replica'], 'base': s['base_replica']})
        v['receiving'] = len(steps)
        if steps or v['plan']['unfinished']:
            v['receive_index'] = len(state['receive'])
            state['receive'].append({'vg': v['target_vg'], 'pool': v['target_pool'], 'tags': v['plan']['tags'],
                                     'steps': steps, 'finish': v['plan']['unfinished']})
    return state


def received(state, receive):
    """Record what receive did, then decide rotation from the states after the run (send's lvs and
    receive's, for volumes that made changes) or from the probe's (the others): what each side removes,
    which diff files and spool directories are swept."""
    state = dict(state, stage='received')
    results = (receive or {}).get('volumes') or []
    if len(results) != len(state['receive']):
        raise PlanError('receive returned %d results for %d volumes' % (len(results), len(state['receive'])))
    source_after = state.get('source_after') or {}
    target_after = (receive or {}).get('lvs') or {}
    rot = {'source': {'remove': [], 'files': [], 'sweep': []}, 'target': {'remove': [], 'sweep': []}}
    owners = {'source': [], 'target': []}  # the volume of each item to remove, in order
    for v in state['volumes']:
        if 'receive_index' in v:
            res = results[v['receive_index']]
            v['received'] = res
            for s, r in zip(v['steps'], res.get('steps') or []):
                s['received'] = r
            if res.get('failed'):
                _fail(v, 'receive', res)
        if 'plan' not in v or v['error'] is not None:
            continue
        after = v['plan']
        if v['steps'] and not state['check_mode']:
            try:
                after = plan(source_after.get(v['vg'], []), target_after.get(v['target_vg'], []), v['vg'], v['lv'],
                             state['host'], v['keep_source'], v['keep_target'], v['prefix'])
            except PlanError as e:
                _fail(v, 'rotation', {'msg': str(e)})
                continue
        v['after'] = after
        for name in after['delete_source']:
            rot['source']['remove'].append({'vg': v['vg'], 'lv': name, 'tag': TAG_SNAP})
            owners['source'].append(v['key'])
        for name in after['delete_target']:
            rot['target']['remove'].append({'vg': v['target_vg'], 'lv': name, 'tag': TAG_REPLICA})
            owners['target'].append(v['key'])
        if v['steps'] and after['pending'] is None:  # nothing left to resume: spool leftovers can go
            if not state['keep_diffs']:
                rot['source']['files'] += [s['dest'] for s in v['steps']]
            rot['source']['sweep'].append(v['spool'])
            rot['target']['sweep'].append(v['target_spool'])
    state['rotate'], state['rotate_owners'] = rot, owners
    return state


def rotated(state, source=None, target=None):
    """The role's results, one per volume (replicate_results), and the failed ones."""
    state = dict(state, stage='rotated')
    for side, res in (('source', source), ('target', target)):
        items = state['rotate'][side]['remove']
        if not items or not res or res.get('skipped'):
            continue
        by_key = dict((v['key'], v) for v in state['volumes'])
        for (item, r), key in zip(_by_position(items, res.get('remove'), 'rotate'), state['rotate_owners'][side]):
            v = by_key[key]
            if r.get('failed'):
                _fail(v, 'rotate', r)
            else:
                v.setdefault('deleted_' + side, []).append(item['lv'])
    state['results'] = [_result(state, v) for v in state['volumes']]
    state['failed'] = [r for r in state['results'] if r['status'] == 'failed']
    return state


def _cycle(state, v, s):
    pr = v.get('probe') or {}
    sent_ = s.get('sent') or {}
    moved = s.get('relayed') if state['transfer'] == 'relay' else sent_
    moved = moved or {}
    # The probe compared the volume with its newest snapshot: that is the new snapshot's change.
    est = sent_.get('size', 0) if s['kind'] == 'resume' else pr.get('estimated_size', 0)
    c = {'kind': s['kind'], 'snapshot': s['snapshot'], 'base': s['base'], 'replica': s['replica'],
         'estimated_bytes': est,
         'diff_size': sent_.get('size', 0),
         'data_chunks': sent_.get('data_chunks', pr.get('data_chunks', 0) if s['kind'] != 'resume' else 0),
         'discard_chunks': sent_.get('discard_chunks', pr.get('discard_chunks', 0) if s['kind'] != 'resume' else 0),
         'bytes_sent': moved.get('bytes_sent', 0), 'resumed_from': moved.get('resumed_from', 0),
         'transfer_seconds': moved.get('seconds', 0)}
    if state['check_mode']:
        c['summary'] = 'would send %s %s%s, about %d bytes' % (
            s['kind'], s['snapshot'] if s['kind'] == 'resume' else 'snapshot',
            ' against %s' % s['base'] if s['base'] else '', c['estimated_bytes'])
    else:
        c['summary'] = '%s %s%s, sent %d of %d bytes%s -> %s' % (
            s['kind'], s['snapshot'] if s['kind'] == 'resume' else 'snapshot',
            ' against %s' % s['base'] if s['base'] else '', c['bytes_sent'], c['diff_size'],
            ' (resumed at byte %d)' % c['resumed_from'] if c['resumed_from'] else '', s['replica'])
    return c


def _unchanged(v):
    pr = v.get('probe') or {}
    common = v['plan']['common']
    return {'kind': 'unchanged', 'snapshot': None, 'base': common['snapshot'] if common else None,
            'replica': None, 'estimated_bytes': 0, 'diff_size': 0, 'data_chunks': pr.get('data_chunks', 0),
            'discard_chunks': pr.get('discard_chunks', 0), 'bytes_sent': 0, 'resumed_from': 0,
            'transfer_seconds': 0, 'summary': 'unchanged'}


def _result(state, v):
    steps = v.get('steps') or []
    done = [s for s in steps if 'sent' in s or state['check_mode']]
    cycles = [_cycle(state, v, s) for s in done]
    if 'plan' in v and v['error'] is None and (not steps or steps[-1]['create'] is False):
        cycles.append(_unchanged(v))
    sent_bytes = sum(c['bytes_sent'] for c in cycles)
    if v['error'] is not None:
        return {'vg': v['vg'], 'lv': v['lv'], 'volume': v['key'], 'status': 'failed', 'changed': True,
                'cycles': cycles, 'bytes_sent': sent_bytes, 'error': v['error'],
                'failed_result': v['failed_result'],
                'summary': '%s: FAILED: %s' % (v['key'], v['error'])}
    after = v.get('after') or v['plan']
    deleted_source = v.get('deleted_source', after['delete_source'] if state['check_mode'] else [])
    deleted_target = v.get('deleted_target', after['delete_target'] if state['check_mode'] else [])
    changed = (bool(steps) and not state['check_mode'] or bool(v.get('deleted_source') or v.get('deleted_target'))
               or bool((v.get('received') or {}).get('finished')))
    summary = '%s: %s' % (v['key'], '; '.join(c['summary'] for c in cycles))
    if v.get('deleted_source') or v.get('deleted_target'):
        summary += '; removed %d snapshot(s), %d replica(s)' % (len(deleted_source), len(deleted_target))
    return {'vg': v['vg'], 'lv': v['lv'], 'status': 'check' if state['check_mode'] else 'ok', 'changed': changed,
            'cycles': cycles, 'bytes_sent': sent_bytes,
            'replica': after['common']['replica'] if after['common'] else None,
            'snapshots': [s['name'] for s in after['snapshots'] if s['name'] not in deleted_source],
            'replicas': [r['name'] for r in after['replicas'] if r['name'] not in deleted_target],
            'deleted_source': deleted_source, 'deleted_target': deleted_target, 'summary': summary}


_ADVANCE = {'start': start, 'probed': probed, 'sent': sent, 'relayed': relayed, 'received': received,
            'rotated': rotated}


def advance(state, stage, *args, **kwargs):
    """The state after stage (one of STAGES), from the state before and what the last module returned."""
    if stage not in _ADVANCE:
        raise PlanError('unknown stage %r (one of %s)' % (stage, ', '.join(STAGES)))
    # Stages mutate the volumes they record into: work on a copy of what the role holds.
    return _ADVANCE[stage](copy.deepcopy(state), *args, **kwargs)

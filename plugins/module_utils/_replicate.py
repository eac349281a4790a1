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

import json
import re

from ansible_collections.lvdiff.thin.plugins.module_utils._lvm import TAG_ORIGIN, TMP_SUFFIX

TAG_SNAP = 'lvdiff_rep_snap'
TAG_REPLICA = 'lvdiff_rep_replica'
TAG_OF = 'lvdiff_rep_of:'
SNAP_INFIX = '-rep-'
TIME_FORMAT = '%Y%m%dT%H%M%SZ'
_TIME = re.compile(r'-(\d{8}T\d{6}Z)$')
_NAME = re.compile(r'^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$')
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
    if not _NAME.match(name) or len(name) > _NAME_MAX - reserve or name in ('.', '..'):
        raise PlanError('%s %r is not a valid LVM name (letters, digits, + _ . -; at most %d characters here)'
                        % (kind, name, _NAME_MAX - reserve))
    return name


def snapshot_name(lv, time):
    return check_name('snapshot name', '%s%s%s' % (lv, SNAP_INFIX, time))


def default_prefix(host, vg, lv):
    return '%s-%s-%s' % (safe_name_part(host), vg, lv)


def replica_name(prefix, time):
    return check_name('replica name', '%s-%s' % (prefix, time), reserve=len(TMP_SUFFIX))


def _newest_first(items):
    return sorted(items, key=lambda x: (x['time'], x['name']), reverse=True)


def snapshots_of(src_rows, uuid):
    """The role's snapshots of the volume with LV UUID uuid, newest first (the first is the one a
    new diff starts from: the pending snapshot, or else the last common one)."""
    snaps = []
    for r in src_rows:
        if TAG_SNAP in r['tags'] and tag_value(r, TAG_OF) == uuid and stamp(r['lv_name']):
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

# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The retention policy of a backup repository: which backups of one volume to keep and which to
prune, and whether the next backup is a full image. Pure decisions on plain dicts, no I/O and no
clock reads, so a controller filter and the modules can both call them.

A backup is ``{'id': str, 'time': ISO 8601 text like '2026-12-01T03:00:00Z' (or with a +HH:MM
offset) or an aware datetime, 'full': bool, 'base': id of the backup it was made against, or None
for a full image}``; other keys are ignored. Backups are ordered by (time in UTC, id): "newest
first" and "the newest of a period" always use that order, so ties are broken the same way on
every call.

Restorable: a backup whose chain of bases reaches a full image inside the given list. An
incremental whose base is missing, every incremental made (directly or not) against it, and any
loop of bases are ORPHANS: never a restorable point, never a reason to keep anything.

The policy (as ``borg prune`` / ``restic forget``), each count an int >= 0, missing, None or 0 = off:
  - keep_last N: the N newest restorable backups.
  - keep_hourly / keep_daily / keep_weekly / keep_monthly / keep_yearly N: walking the restorable
    backups newest first, a backup is kept when it is the newest of its period (UTC; ISO weeks,
    Monday start) and the rule has kept fewer than N periods so far. Periods without a backup do
    not count. Each rule is independent of the others (as restic: a backup may be kept by several
    rules, and one rule's pick never uses up another's count).
  - the newest restorable backup is always kept: the next incremental is made against it.
  - chain closure: every kept backup keeps its whole chain back to its full image, so whatever is
    kept stays restorable.
A backup kept by a rule or as the newest is a *point*; one kept only for a later backup is a base.
Reasons are 'newest', 'last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly' and
'base of <id>' (one per kept backup made directly against it).

When every keep_* rule is off, everything is kept, orphans included, with the reason 'no keep
rule': a policy that would keep nothing is taken for a mistake, never as "delete all". Unknown
policy keys are refused, so that a misspelt rule cannot silently prune what it meant to keep.

The next kind (keys full_every, full_days): a full image when there is no restorable backup, when
the newest restorable backup's chain already holds full_every incrementals or more, or when that
chain's full image is full_days days old or older at ``now``; else an incremental against the
newest restorable backup.
"""

from __future__ import annotations

import datetime
import re

from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError

PERIODS = (
    ('hourly', lambda t: (t.year, t.month, t.day, t.hour)),
    ('daily', lambda t: (t.year, t.month, t.day)),
    ('weekly', lambda t: tuple(t.isocalendar()[:2])),
    ('monthly', lambda t: (t.year, t.month)),
    ('yearly', lambda t: (t.year,)),
)
KEEP_RULES = ('keep_last',) + tuple('keep_' + period[0] for period in PERIODS)
NEXT_RULES = ('full_every', 'full_days')
NO_RULE = 'no keep rule'

# [0-9], not \d: \d also matches other scripts' digits, which int() would accept.
_TIME = re.compile(r'([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?'
                   r'(Z|[+-][0-9]{2}:[0-9]{2})\Z')
_UTC = datetime.timezone.utc


def parse_time(value, what):
    """value (ISO 8601 text with Z or an offset, or an aware datetime) as an aware UTC datetime."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise LvdiffError('%s: time %s has no time zone' % (what, value.isoformat()))
        return value.astimezone(_UTC)
    m = _TIME.match(value) if isinstance(value, str) else None
    if m is None:
        raise LvdiffError('%s: time %r is not an ISO 8601 time like 2026-12-01T03:00:00Z' % (what, value))
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or '0').ljust(6, '0'))
    zone = m.group(8)
    offset = datetime.timedelta(0)
    if zone != 'Z':
        offset = datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        offset = -offset if zone[0] == '-' else offset
    try:
        return datetime.datetime(year, month, day, hour, minute, second, micro,
                                 datetime.timezone(offset)).astimezone(_UTC)
    except (ValueError, OverflowError) as e:
        raise LvdiffError('%s: time %r is not a valid time: %s' % (what, value, e))


def _check_backups(backups):
    """{id: backup} with 'time' as a UTC datetime, after checking every field."""
    if not isinstance(backups, (list, tuple)):
        raise LvdiffError('backups must be a list, not %s' % type(backups).__name__)
    by_id = {}
    for index, b in enumerate(backups):
        if not isinstance(b, dict):
            raise LvdiffError('backup #%d is not a dict but %s' % (index, type(b).__name__))
        bid = b.get('id')
        if not isinstance(bid, str) or not bid:
            raise LvdiffError('backup #%d: id missing or not a non-empty string' % index)
        what = 'backup %r' % bid
        if bid in by_id:
            raise LvdiffError('%s appears twice' % what)
        if 'time' not in b:
            raise LvdiffError('%s: time missing' % what)
        full = b.get('full')
        if not isinstance(full, bool):
            raise LvdiffError('%s: full missing or not true/false' % what)
        base = b.get('base')
        if base is not None and (not isinstance(base, str) or not base):
            raise LvdiffError('%s: base %r is not a backup id (a non-empty string) or None' % (what, base))
        if full and base is not None:
            raise LvdiffError('%s: a full image has no base, yet base is %r' % (what, base))
        if not full and base is None:
            raise LvdiffError('%s: an incremental needs a base' % what)
        by_id[bid] = {'id': bid, 'time': parse_time(b['time'], what), 'full': full, 'base': base}
    return by_id


def _newest_first(by_id, ids):
    return sorted(ids, key=lambda i: (by_id[i]['time'], i), reverse=True)


def _restorable(by_id):
    """The ids whose chain of bases reaches a full image. Each backup is walked once (what a walk
    learns holds for its whole path), and a loop of bases ends the walk."""
    state = {}  # id -> True (restorable) or False (orphan)
    for start in by_id:
        path, on_path, cur = [], set(), start
        while cur in by_id and cur not in state and cur not in on_path:
            path.append(cur)
            on_path.add(cur)
            if by_id[cur]['full']:
                break
            cur = by_id[cur]['base']
        if path and by_id[path[-1]]['full']:
            ok = True
        else:
            ok = state.get(cur, False)  # a missing base or a loop leaves cur out of state: orphans
        for i in path:
            state[i] = ok
    return set(i for i, ok in state.items() if ok)


def check_policy(policy):
    """policy with every rule as an int (0 when off); LvdiffError for a bad or unknown key."""
    if policy is None:
        policy = {}
    if not isinstance(policy, dict):
        raise LvdiffError('the retention policy must be a dict, not %s' % type(policy).__name__)
    unknown = sorted(str(k) for k in policy if k not in KEEP_RULES + NEXT_RULES)
    if unknown:
        raise LvdiffError('retention policy: unknown key %s (known: %s)'
                          % (', '.join(unknown), ', '.join(KEEP_RULES + NEXT_RULES)))
    rules = {}
    for key in KEEP_RULES + NEXT_RULES:
        value = policy.get(key)
        if value is None:
            value = 0
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise LvdiffError('retention policy: %s must be a whole number >= 0, not %r' % (key, value))
        rules[key] = value
    return rules


def _pick(by_id, candidates, rules):
    """{id: [rule reasons]} of the restorable backups (candidates, newest first) kept by the rules
    or as the newest. A rule adds its reason at most once to a backup: its picks are distinct."""
    reasons = {}
    if candidates:
        reasons[candidates[0]] = ['newest']
    for i in candidates[:rules['keep_last']]:
        reasons.setdefault(i, []).append('last')
    for name, period_of in PERIODS:
        wanted = rules['keep_' + name]
        periods, last = 0, None
        for i in candidates:
            if periods >= wanted:
                break
            period = period_of(by_id[i]['time'])
            if period != last:  # newest first: the first backup met in a period is its newest
                last = period
                periods += 1
                reasons.setdefault(i, []).append(name)
    return reasons


def select(backups, policy, now=None):
    """Which backups of one volume to keep and prune; see the module docstring.

    Returns dict(keep=[ids], prune=[ids], reasons={kept id: [reason, ...]}, orphans=[ids],
    points=[ids]), every list newest first. prune holds the orphans too (also listed alone, for a
    caller that would rather keep them). now is accepted for symmetry with next_kind and unused:
    periods are the backups' own."""
    rules = check_policy(policy)
    by_id = _check_backups(backups)
    restorable = _restorable(by_id)
    every = _newest_first(by_id, by_id)
    orphans = [i for i in every if i not in restorable]
    candidates = [i for i in every if i in restorable]

    if not any(rules[k] for k in KEEP_RULES):
        return {'keep': every, 'prune': [], 'reasons': dict((i, [NO_RULE]) for i in every),
                'orphans': orphans, 'points': candidates}

    picked = _pick(by_id, candidates, rules)
    reasons = dict((i, list(why)) for i, why in picked.items())
    # Chain closure from each point, newest first: a walk stops at a base already kept (whose own
    # bases are then kept already), so each kept backup adds one 'base of' to its base.
    for i in candidates:
        if i not in picked:
            continue
        child, base = i, by_id[i]['base']
        while base is not None:
            known = base in reasons
            reasons.setdefault(base, []).append('base of %s' % child)
            if known:
                break
            child, base = base, by_id[base]['base']
    return {'keep': [i for i in every if i in reasons],
            'prune': [i for i in every if i not in reasons],
            'reasons': reasons,
            'orphans': orphans,
            'points': [i for i in candidates if i in picked]}


def _chain(by_id, backup_id):
    chain, seen, cur = [], set(), backup_id
    while True:
        chain.append(cur)
        seen.add(cur)
        base = by_id[cur]['base']
        if base is None:
            return list(reversed(chain))
        if base not in by_id:
            raise LvdiffError('the chain of backup %r is broken: %r was made against %r, which is missing'
                              % (backup_id, cur, base))
        if base in seen:
            raise LvdiffError('the chain of backup %r is broken: it loops back to %r' % (backup_id, base))
        cur = base


def chain_of(backups, backup_id):
    """[ids from the full image to backup_id]: everything a restore of backup_id needs, in order."""
    by_id = _check_backups(backups)
    if backup_id not in by_id:
        raise LvdiffError('no backup %r' % (backup_id,))
    return _chain(by_id, backup_id)


def next_kind(backups, policy, now):
    """('full' or 'incremental', why): the kind of the next backup at now; see the module docstring.
    An incremental is made against the newest restorable backup."""
    rules = check_policy(policy)
    by_id = _check_backups(backups)
    now = parse_time(now, 'now')
    restorable = _restorable(by_id)
    if not restorable:
        return 'full', 'no restorable backup' + (' (only orphans)' if by_id else '')
    newest = _newest_first(by_id, restorable)[0]
    chain = _chain(by_id, newest)
    full, increments = chain[0], len(chain) - 1
    if rules['full_every'] and increments >= rules['full_every']:
        return 'full', 'the chain of %s has %d incrementals, full_every is %d' % (
            newest, increments, rules['full_every'])
    age = now - by_id[full]['time']
    if rules['full_days'] and age >= datetime.timedelta(days=rules['full_days']):
        return 'full', 'the full image %s is %.2f days old, full_days is %d' % (
            full, age.total_seconds() / 86400, rules['full_days'])
    return 'incremental', 'against %s (%d incrementals since the full image %s)' % (newest, increments, full)

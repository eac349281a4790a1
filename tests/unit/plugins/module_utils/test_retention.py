"""The retention policy of a backup repository (module_utils._retention): worked examples with exact
keep/prune sets, chain closure, orphans, validation messages, the next backup's kind, and properties
over random histories (chains stay restorable, rules keep exactly their periods, idempotence)."""
from __future__ import annotations

import datetime
import random

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError
from ansible_collections.lvdiff.thin.plugins.module_utils._retention import (
    KEEP_RULES, chain_of, next_kind, parse_time, select)

UTC = datetime.timezone.utc


def bk(bid, time, base=None, **extra):
    return dict(extra, id=bid, time=time, full=base is None, base=base)


def day(n, hour=3):
    """2026-12-01 + n - 1 days, at hour."""
    t = datetime.datetime(2026, 12, 1, hour, tzinfo=UTC) + datetime.timedelta(days=n - 1)
    return t.strftime('%Y-%m-%dT%H:%M:%SZ')


def daily_chains(days, full_every):
    """One backup a day ('d1'...), a full image every full_every days, each incremental against the day before."""
    return [bk('d%d' % n, day(n), None if (n - 1) % full_every == 0 else 'd%d' % (n - 1)) for n in range(1, days + 1)]


def ids(prefix, numbers):
    return ['%s%d' % (prefix, n) for n in numbers]


# ---------------------------------------------------------------------------------------------
# Worked examples


def test_keep_last_keeps_the_newest_and_their_chains():
    backups = [bk('F1', day(1)), bk('a', day(2), 'F1'), bk('b', day(3), 'a'),
               bk('F2', day(4)), bk('c', day(5), 'F2'), bk('d', day(6), 'c')]
    r = select(list(reversed(backups)), {'keep_last': 2})
    assert r['keep'] == ['d', 'c', 'F2']
    assert r['prune'] == ['b', 'a', 'F1']
    assert r['points'] == ['d', 'c']
    assert r['reasons'] == {'d': ['newest', 'last'], 'c': ['last', 'base of d'], 'F2': ['base of c']}
    assert r['orphans'] == []


def test_keep_last_on_one_chain_keeps_the_whole_chain():
    r = select(daily_chains(5, 100), {'keep_last': 1})
    assert r['keep'] == ids('d', range(5, 0, -1)) and r['prune'] == [] and r['points'] == ['d5']
    assert r['reasons']['d1'] == ['base of d2']


def test_daily_over_ten_days_with_three_backups_a_day():
    # A full image at 00:00 each day, incrementals at 08:00 and 16:00 against the one before.
    backups = []
    for n in range(1, 11):
        backups += [bk('f%d' % n, day(n, 0)), bk('m%d' % n, day(n, 8), 'f%d' % n),
                    bk('e%d' % n, day(n, 16), 'm%d' % n)]
    random.Random(1).shuffle(backups)
    r = select(backups, {'keep_daily': 3})
    assert r['points'] == ['e10', 'e9', 'e8']
    assert r['keep'] == ['e10', 'm10', 'f10', 'e9', 'm9', 'f9', 'e8', 'm8', 'f8']
    assert set(r['prune']) == set(b['id'] for b in backups) - set(r['keep'])
    assert r['prune'][:3] == ['e7', 'm7', 'f7'] and len(r['prune']) == 21
    assert r['reasons']['e10'] == ['newest', 'daily'] and r['reasons']['e9'] == ['daily']
    assert r['reasons']['m9'] == ['base of e9'] and r['reasons']['f9'] == ['base of m9']


def test_periods_are_utc_days():
    # 23:30 at -01:00 is 00:30 UTC the next day: the newest of December 2nd, not of the 1st.
    backups = [bk('a', '2026-12-01T22:00:00Z'), bk('b', '2026-12-01T23:30:00-01:00'),
               bk('c', datetime.datetime(2026, 12, 2, 1, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))))]
    r = select(backups, {'keep_daily': 5})
    # c is 2026-12-01T23:00Z: December 1st's newest; b alone is December 2nd.
    assert r['reasons'] == {'b': ['newest', 'daily'], 'c': ['daily']}
    assert r['prune'] == ['a']


def test_weekly_uses_iso_weeks_across_the_year_boundary():
    # 2026-12-28 (Mon) to 2027-01-03 (Sun) is ISO week 2026-W53: Dec 29 and Jan 2 share it.
    backups = [bk('sun-w52', '2026-12-27T03:00:00Z'), bk('tue-w53', '2026-12-29T03:00:00Z'),
               bk('sat-w53', '2027-01-02T03:00:00Z'), bk('tue-w01', '2027-01-05T03:00:00Z')]
    r = select(backups, {'keep_weekly': 3})
    assert r['keep'] == ['tue-w01', 'sat-w53', 'sun-w52']
    assert r['prune'] == ['tue-w53']
    assert select(backups, {'keep_weekly': 2})['keep'] == ['tue-w01', 'sat-w53']


def test_a_sunday_and_the_monday_after_are_different_weeks():
    backups = [bk('sun', '2027-01-03T23:59:59Z'), bk('mon', '2027-01-04T00:00:00Z')]
    assert select(backups, {'keep_weekly': 2})['keep'] == ['mon', 'sun']
    assert select(backups, {'keep_daily': 2})['keep'] == ['mon', 'sun']


def test_monthly_with_gaps_counts_only_months_with_a_backup():
    backups = [bk('jan15', '2026-01-15T03:00:00Z'), bk('jan20', '2026-01-20T03:00:00Z'),
               bk('mar05', '2026-03-05T03:00:00Z'), bk('jun01', '2026-06-01T03:00:00Z'),
               bk('jun30', '2026-06-30T03:00:00Z'), bk('jul02', '2026-07-02T03:00:00Z')]
    r = select(backups, {'keep_monthly': 3})
    assert r['keep'] == ['jul02', 'jun30', 'mar05']
    assert r['prune'] == ['jun01', 'jan20', 'jan15']
    assert select(backups, {'keep_monthly': 10})['keep'] == ['jul02', 'jun30', 'mar05', 'jan20']


def test_hourly_and_yearly():
    backups = [bk('h%d' % m, '2026-12-31T22:%02d:00Z' % m) for m in (0, 30)]
    backups += [bk('n%d' % m, '2027-01-01T00:%02d:00Z' % m) for m in (10, 40)]
    assert select(backups, {'keep_hourly': 2})['keep'] == ['n40', 'h30']
    assert select(backups, {'keep_hourly': 24})['keep'] == ['n40', 'h30']
    assert select(backups, {'keep_yearly': 5})['keep'] == ['n40', 'h30']
    assert select(backups, {'keep_yearly': 1})['keep'] == ['n40']


def test_rules_are_independent_and_every_reason_is_recorded():
    backups = daily_chains(10, 1)  # all full images, one a day
    r = select(backups, {'keep_last': 2, 'keep_daily': 3, 'keep_monthly': 1, 'keep_yearly': 1})
    assert r['keep'] == ['d10', 'd9', 'd8']
    assert r['reasons'] == {'d10': ['newest', 'last', 'daily', 'monthly', 'yearly'],
                            'd9': ['last', 'daily'], 'd8': ['daily']}
    # borg would not let keep_last's picks use up keep_daily's count; here each rule counts its own.
    r = select(backups, {'keep_last': 3, 'keep_daily': 3})
    assert r['keep'] == ['d10', 'd9', 'd8']


def test_a_kept_middle_incremental_keeps_its_whole_chain():
    backups = [bk('F', '2026-12-29T03:00:00Z'), bk('I1', '2026-12-30T03:00:00Z', 'F'),
               bk('I2', '2026-12-31T03:00:00Z', 'I1'), bk('I3', '2027-01-01T03:00:00Z', 'I2'),
               bk('I4', '2027-01-02T03:00:00Z', 'I3'),
               bk('F2', '2027-01-03T03:00:00Z'), bk('J1', '2027-01-04T03:00:00Z', 'F2')]
    r = select(backups, {'keep_yearly': 2})
    assert r['points'] == ['J1', 'I2']
    assert r['keep'] == ['J1', 'F2', 'I2', 'I1', 'F']
    assert r['prune'] == ['I4', 'I3']
    assert r['reasons'] == {'J1': ['newest', 'yearly'], 'F2': ['base of J1'], 'I2': ['yearly'],
                            'I1': ['base of I2'], 'F': ['base of I1']}


def test_two_chains_the_old_one_goes_whole_when_no_rule_needs_it():
    backups = daily_chains(14, 7)  # full images d1 and d8
    r = select(backups, {'keep_last': 3})
    assert r['keep'] == ids('d', range(14, 7, -1)) and r['prune'] == ids('d', range(7, 0, -1))
    assert r['points'] == ['d14', 'd13', 'd12']
    r = select(backups, {'keep_daily': 7})
    assert r['keep'] == ids('d', range(14, 7, -1)) and r['prune'] == ids('d', range(7, 0, -1))
    # One more day reaches d7, the old chain's last incremental: all of the old chain stays.
    r = select(backups, {'keep_daily': 8})
    assert r['keep'] == ids('d', range(14, 0, -1)) and r['prune'] == []
    assert r['reasons']['d1'] == ['base of d2'] and r['reasons']['d7'] == ['daily']


def test_branches_each_base_lists_every_kept_child():
    backups = [bk('F', day(1)), bk('a', day(2), 'F'), bk('b', day(3), 'F'), bk('c', day(4), 'a')]
    r = select(backups, {'keep_daily': 3})
    assert r['points'] == ['c', 'b', 'a']
    assert r['reasons']['F'] == ['base of b', 'base of a']
    assert r['reasons']['a'] == ['daily', 'base of c']
    assert r['prune'] == []


def test_orphans_are_never_points_never_keep_anything_and_are_pruned():
    backups = [bk('F', day(1)), bk('I1', day(2), 'F'), bk('X', day(3), 'gone'), bk('Y', day(4), 'X'),
               bk('I2', day(5), 'I1'), bk('Z', day(6), 'Y')]
    r = select(backups, {'keep_last': 2})
    assert r['orphans'] == ['Z', 'Y', 'X']
    assert r['points'] == ['I2', 'I1']
    assert r['keep'] == ['I2', 'I1', 'F']
    assert r['prune'] == ['Z', 'Y', 'X']
    assert r['reasons']['I2'] == ['newest', 'last']
    # Orphans count in no period either: day 6, 4 and 3 have no restorable backup.
    assert select(backups, {'keep_daily': 2})['keep'] == ['I2', 'I1', 'F']


def test_a_loop_of_bases_is_orphaned():
    backups = [bk('F', day(1)), bk('p', day(2), 'q'), bk('q', day(3), 'p'), bk('s', day(4), 's')]
    r = select(backups, {'keep_last': 5})
    assert r['orphans'] == ['s', 'q', 'p'] and r['keep'] == ['F'] and r['prune'] == ['s', 'q', 'p']


def test_only_orphans_keeps_nothing_when_a_rule_is_on():
    r = select([bk('X', day(1), 'gone')], {'keep_last': 3})
    assert r == {'keep': [], 'prune': ['X'], 'reasons': {}, 'orphans': ['X'], 'points': []}


def test_the_newest_restorable_is_always_kept_with_its_reason():
    backups = [bk('old', '2025-03-01T00:00:00Z'), bk('new', '2026-07-01T00:00:00Z'),
               bk('orphan', '2026-08-01T00:00:00Z', 'gone')]
    r = select(backups, {'keep_yearly': 1})
    assert r['keep'] == ['new'] and r['reasons'] == {'new': ['newest', 'yearly']}
    assert r['prune'] == ['orphan', 'old']


def test_equal_times_are_ordered_by_id():
    backups = [bk('a', day(1)), bk('b', day(1)), bk('c', day(1))]
    r = select(backups, {'keep_last': 2})
    assert r['keep'] == ['c', 'b'] and r['prune'] == ['a']
    assert select(backups, {'keep_daily': 9})['keep'] == ['c']


@pytest.mark.parametrize('policy', [{}, None, {'keep_last': 0, 'keep_daily': None, 'full_every': 7, 'full_days': 30}])
def test_every_keep_rule_off_keeps_everything(policy):
    backups = daily_chains(6, 3) + [bk('X', day(7), 'gone')]
    r = select(backups, policy)
    assert r['keep'] == ['X'] + ids('d', range(6, 0, -1)) and r['prune'] == []
    assert r['orphans'] == ['X'] and r['points'] == ids('d', range(6, 0, -1))
    assert r['reasons'] == dict((i, ['no keep rule']) for i in r['keep'])


def test_empty_history():
    assert select([], {'keep_last': 1}) == {'keep': [], 'prune': [], 'reasons': {}, 'orphans': [], 'points': []}


def test_unknown_backup_keys_are_ignored_and_now_is_unused():
    backups = [bk('F', day(1), size=1, path='/x'), bk('I', day(2), 'F', note=None)]
    assert select(backups, {'keep_last': 1}, now='1970-01-01T00:00:00Z')['keep'] == ['I', 'F']


def test_time_forms():
    assert parse_time('2026-12-01T03:00:00Z', 'x') == datetime.datetime(2026, 12, 1, 3, tzinfo=UTC)
    assert parse_time('2026-12-01T05:30:00.25+02:30', 'x') == datetime.datetime(
        2026, 12, 1, 3, 0, 0, 250000, tzinfo=UTC)
    assert parse_time('2026-12-01T00:00:00-03:00', 'x').day == 1
    assert parse_time('2026-12-01T00:00:00-03:00', 'x').hour == 3


# ---------------------------------------------------------------------------------------------
# Validation: exact messages


@pytest.mark.parametrize('backups, message', [
    ({'id': 'a'}, 'backups must be a list, not dict'),
    ([bk('a', day(1)), 'b'], 'backup #1 is not a dict but str'),
    ([{'time': day(1), 'full': True, 'base': None}], 'backup #0: id missing or not a non-empty string'),
    ([bk('', day(1))], 'backup #0: id missing or not a non-empty string'),
    ([bk(7, day(1))], 'backup #0: id missing or not a non-empty string'),
    ([bk('a', day(1)), bk('a', day(2))], "backup 'a' appears twice"),
    ([{'id': 'a', 'full': True, 'base': None}], "backup 'a': time missing"),
    ([bk('a', '2026-12-01 03:00:00')],
     "backup 'a': time '2026-12-01 03:00:00' is not an ISO 8601 time like 2026-12-01T03:00:00Z"),
    ([bk('a', '2026-12-01T03:00:00')],
     "backup 'a': time '2026-12-01T03:00:00' is not an ISO 8601 time like 2026-12-01T03:00:00Z"),
    ([bk('a', '2026-12-01T03:00:0\u0660Z')],
     "backup 'a': time '2026-12-01T03:00:0\u0660Z' is not an ISO 8601 time like 2026-12-01T03:00:00Z"),
    ([bk('a', 1764558000)], "backup 'a': time 1764558000 is not an ISO 8601 time like 2026-12-01T03:00:00Z"),
    ([bk('a', '2026-02-30T03:00:00Z')],
     "backup 'a': time '2026-02-30T03:00:00Z' is not a valid time: day is out of range for month"),
    ([bk('a', '2026-12-01T24:00:00Z')],
     "backup 'a': time '2026-12-01T24:00:00Z' is not a valid time: hour must be in 0..23"),
    ([bk('a', datetime.datetime(2026, 12, 1, 3))], "backup 'a': time 2026-12-01T03:00:00 has no time zone"),
    ([{'id': 'a', 'time': day(1), 'base': None}], "backup 'a': full missing or not true/false"),
    ([{'id': 'a', 'time': day(1), 'full': 1, 'base': None}], "backup 'a': full missing or not true/false"),
    ([{'id': 'a', 'time': day(1), 'full': True, 'base': 'b'}], "backup 'a': a full image has no base, yet base is 'b'"),
    ([{'id': 'a', 'time': day(1), 'full': False, 'base': None}], "backup 'a': an incremental needs a base"),
    ([{'id': 'a', 'time': day(1), 'full': False}], "backup 'a': an incremental needs a base"),
    ([{'id': 'a', 'time': day(1), 'full': False, 'base': 3}],
     "backup 'a': base 3 is not a backup id (a non-empty string) or None"),
    ([{'id': 'a', 'time': day(1), 'full': False, 'base': ''}],
     "backup 'a': base '' is not a backup id (a non-empty string) or None"),
])
def test_backup_validation(backups, message):
    for call in (lambda: select(backups, {'keep_last': 1}), lambda: next_kind(backups, {}, day(9)),
                 lambda: chain_of(backups, 'a')):
        with pytest.raises(LvdiffError) as e:
            call()
        assert e.value.msg == message


@pytest.mark.parametrize('policy, message', [
    ([('keep_last', 1)], 'the retention policy must be a dict, not list'),
    ({'keep_dayly': 7, 'keep_last': 1}, 'retention policy: unknown key keep_dayly (known: keep_last, keep_hourly, '
     'keep_daily, keep_weekly, keep_monthly, keep_yearly, full_every, full_days)'),
    ({'keep_last': -1}, 'retention policy: keep_last must be a whole number >= 0, not -1'),
    ({'keep_daily': True}, 'retention policy: keep_daily must be a whole number >= 0, not True'),
    ({'keep_weekly': '4'}, "retention policy: keep_weekly must be a whole number >= 0, not '4'"),
    ({'keep_yearly': 1.0}, 'retention policy: keep_yearly must be a whole number >= 0, not 1.0'),
    ({'full_every': -7}, 'retention policy: full_every must be a whole number >= 0, not -7'),
    ({'full_days': 'weekly'}, "retention policy: full_days must be a whole number >= 0, not 'weekly'"),
])
def test_policy_validation(policy, message):
    for call in (lambda: select([], policy), lambda: next_kind([], policy, day(1))):
        with pytest.raises(LvdiffError) as e:
            call()
        assert e.value.msg == message


def test_chain_of():
    backups = [bk('F', day(1)), bk('a', day(2), 'F'), bk('b', day(3), 'a'), bk('c', day(4), 'gone'),
               bk('d', day(5), 'c'), bk('p', day(6), 'q'), bk('q', day(7), 'p')]
    assert chain_of(backups, 'b') == ['F', 'a', 'b']
    assert chain_of(backups, 'F') == ['F']
    for bid, message in [('zz', "no backup 'zz'"),
                         ('d', "the chain of backup 'd' is broken: 'c' was made against 'gone', which is missing"),
                         ('q', "the chain of backup 'q' is broken: it loops back to 'q'")]:
        with pytest.raises(LvdiffError) as e:
            chain_of(backups, bid)
        assert e.value.msg == message


# ---------------------------------------------------------------------------------------------
# The next backup's kind


def test_next_kind_with_nothing_restorable():
    assert next_kind([], {}, day(1)) == ('full', 'no restorable backup')
    assert next_kind([bk('X', day(1), 'gone')], {}, day(2)) == ('full', 'no restorable backup (only orphans)')


def test_next_kind_full_every_boundary():
    policy = {'full_every': 3}
    chain = daily_chains(3, 100)  # d1 full, d2 and d3 incrementals
    assert next_kind(chain, policy, day(4)) == ('incremental', 'against d3 (2 incrementals since the full image d1)')
    chain = daily_chains(4, 100)
    assert next_kind(chain, policy, day(5)) == ('full', 'the chain of d4 has 3 incrementals, full_every is 3')
    assert next_kind(chain, {'full_every': 4}, day(5))[0] == 'incremental'
    assert next_kind(chain, {'full_every': 0}, day(5))[0] == 'incremental'
    assert next_kind(chain, {'full_every': None}, day(5))[0] == 'incremental'
    # full_every 1: a full image, one incremental, a full image...
    assert next_kind(daily_chains(1, 100), {'full_every': 1}, day(2))[0] == 'incremental'
    assert next_kind(daily_chains(2, 100), {'full_every': 1}, day(3))[0] == 'full'


def test_next_kind_full_days_boundary():
    backups = [bk('F', '2026-12-01T03:00:00Z'), bk('I', '2026-12-07T03:00:00Z', 'F')]
    policy = {'full_days': 7}
    assert next_kind(backups, policy, '2026-12-08T02:59:59Z') == (
        'incremental', 'against I (1 incrementals since the full image F)')
    assert next_kind(backups, policy, '2026-12-08T03:00:00Z') == (
        'full', 'the full image F is 7.00 days old, full_days is 7')
    assert next_kind(backups, policy, datetime.datetime(2026, 12, 8, 4, tzinfo=datetime.timezone(
        datetime.timedelta(hours=1))))[0] == 'full'
    assert next_kind(backups, {'full_days': 0}, '2030-01-01T00:00:00Z')[0] == 'incremental'


def test_next_kind_both_rules_and_the_newest_restorable_chain():
    backups = daily_chains(10, 7) + [bk('X', day(11), 'gone')]  # chain d8-d10 is the newest restorable
    policy = {'full_every': 3, 'full_days': 3}
    assert next_kind(backups, policy, day(10, 4)) == (
        'incremental', 'against d10 (2 incrementals since the full image d8)')
    assert next_kind(backups, policy, day(11))[0] == 'full'
    assert next_kind(backups + [bk('d11', day(11, 1), 'd10')], policy, day(11, 2)) == (
        'full', 'the chain of d11 has 3 incrementals, full_every is 3')


def test_next_kind_counts_only_its_own_branch():
    backups = [bk('F', day(1)), bk('a', day(2), 'F'), bk('b', day(3), 'a'), bk('c', day(4), 'F')]
    assert next_kind(backups, {'full_every': 2}, day(5)) == (
        'incremental', 'against c (1 incrementals since the full image F)')


@pytest.mark.parametrize('now, message', [
    (None, 'now: time None is not an ISO 8601 time like 2026-12-01T03:00:00Z'),
    (datetime.datetime(2026, 12, 1), 'now: time 2026-12-01T00:00:00 has no time zone'),
])
def test_next_kind_needs_an_aware_now(now, message):
    with pytest.raises(LvdiffError) as e:
        next_kind([], {}, now)
    assert e.value.msg == message


# ---------------------------------------------------------------------------------------------
# Properties over random histories

START = datetime.datetime(2025, 11, 1, tzinfo=UTC)  # 400 days from here cross two new years


@st.composite
def histories(draw):
    """Backups at random times over up to 400 days (ties possible), a full image every k, each incremental
    against the one before or, now and then, an older one (a branch) or a missing one (an orphan)."""
    n = draw(st.integers(0, 40))
    span = draw(st.integers(0, 400 * 86400))
    seconds = sorted(draw(st.lists(st.integers(0, span), min_size=n, max_size=n)))
    k = draw(st.integers(1, 12))
    backups = []
    for i, s in enumerate(seconds):
        t = START + datetime.timedelta(seconds=s)
        base = None
        if i % k:
            how = draw(st.sampled_from(['previous'] * 8 + ['older', 'missing']))
            if how == 'previous':
                base = 'b%d' % (i - 1)
            elif how == 'older':
                base = 'b%d' % draw(st.integers(0, i - 1))
            else:
                base = 'gone%d' % i
        backups.append(bk('b%d' % i, t.strftime('%Y-%m-%dT%H:%M:%SZ') if i % 2 else t, base))
    return draw(st.permutations(backups))


policies = st.fixed_dictionaries({}, optional=dict(
    [(rule, st.one_of(st.none(), st.integers(0, 6))) for rule in KEEP_RULES]
    + [('full_every', st.one_of(st.none(), st.integers(0, 8))),
       ('full_days', st.one_of(st.none(), st.integers(0, 30)))]))


def utc(b):
    return b['time'] if isinstance(b['time'], datetime.datetime) else parse_time(b['time'], 'test')


PERIOD_OF = {
    'hourly': lambda t: t.strftime('%Y-%m-%d %H'),
    'daily': lambda t: t.strftime('%Y-%m-%d'),
    'weekly': lambda t: t.strftime('%G-W%V'),
    'monthly': lambda t: t.strftime('%Y-%m'),
    'yearly': lambda t: t.strftime('%Y'),
}


def restorable_ids(backups):
    good = set()
    for b in backups:
        try:
            chain_of(backups, b['id'])
            good.add(b['id'])
        except LvdiffError:
            pass
    return good


@settings(max_examples=200, deadline=None)
@given(histories(), policies)
def test_properties(backups, policy):
    r = select(backups, policy)
    every = set(b['id'] for b in backups)
    by_id = dict((b['id'], b) for b in backups)
    keep, prune = set(r['keep']), set(r['prune'])
    good = restorable_ids(backups)
    order = sorted(good, key=lambda i: (utc(by_id[i]), i), reverse=True)

    assert keep | prune == every and not keep & prune and len(r['keep']) + len(r['prune']) == len(backups)
    assert set(r['orphans']) == every - good and set(r['orphans']) <= prune | keep
    assert set(r['points']) <= keep and set(r['reasons']) == keep
    if order:
        assert order[0] in r['points'] and r['reasons'][order[0]][0] in ('newest', 'no keep rule')

    if not any(policy.get(rule) for rule in KEEP_RULES):
        assert keep == every and r['points'] == order
    else:
        assert set(r['orphans']) <= prune
        for i in keep:  # every kept backup is restorable from what is kept
            assert set(chain_of(backups, i)) <= keep
        assert [i for i in order if i in keep] == r['keep']
        assert r['points'] == [i for i in r['keep'] if not all(w.startswith('base of ') for w in r['reasons'][i])]
        wanted = policy.get('keep_last') or 0
        assert [i for i in order if 'last' in r['reasons'].get(i, ())] == order[:wanted]
        for name, period_of in PERIOD_OF.items():
            wanted = policy.get('keep_' + name) or 0
            kept = [i for i in order if name in r['reasons'].get(i, ())]
            periods = sorted(set(period_of(utc(by_id[i])) for i in order), reverse=True)
            assert len(kept) <= wanted
            assert len(set(period_of(utc(by_id[i])) for i in kept)) == min(wanted, len(periods)) == len(kept)
            # the newest restorable backup of each of the newest periods, whatever else is kept
            expected = [next(i for i in order if period_of(utc(by_id[i])) == p) for p in periods[:wanted]]
            assert kept == expected

    # Pruning what select prunes changes nothing: same kept set, same points, same next kind.
    kept_backups = [b for b in backups if b['id'] in keep]
    again = select(kept_backups, policy)
    assert again['keep'] == r['keep'] and again['prune'] == [] and again['points'] == r['points']
    now = START + datetime.timedelta(days=410)
    if good:
        assert next_kind(kept_backups, policy, now) == next_kind(backups, policy, now)
    else:
        assert next_kind(kept_backups, policy, now)[0] == next_kind(backups, policy, now)[0] == 'full'

"""The replicate role's decisions (module_utils._replicate.plan, filter replicate_plan) on
lvs reports shaped like LVM's: identity by tags, common and pending snapshots,
interrupted-run leftovers, rotation that keeps the last common snapshot."""
from __future__ import annotations

import json

import pytest

# ansible-test units runs module_utils tests without the controller's ansible (ansible.errors): make unit runs these
pytest.importorskip('ansible.errors')
from ansible_collections.lvdiff.thin.plugins.filter.replicate_plan import FilterModule  # noqa: E402
from ansible_collections.lvdiff.thin.plugins.module_utils._replicate import (
    PlanError, TAG_OF, TAG_ORIGIN, TAG_REPLICA, TAG_SNAP, default_prefix, plan, rows)

VOL = 'VOLUUID-data'
OTHER = 'VOLUUID-other'


def lv(name, uuid, tags=(), attr='Vri---tz-k', size=134217728, pool='pool'):
    return {'lv_name': name, 'lv_uuid': uuid, 'lv_attr': attr, 'lv_tags': ','.join(tags),
            'lv_size': str(size), 'pool_lv': pool}


def report(*lvs):
    return json.dumps({'report': [{'lv': list(lvs)}]})


def snap(time, of=VOL, name=None):
    return lv(name or 'data-rep-%s' % time, 'S-' + time, [TAG_SNAP, TAG_OF + of])


def replica(time, origin_time=None, of=VOL, host='web1', tagged=True, attr='Vri---tz-k', name=None):
    tags = [TAG_ORIGIN + 'S-' + (origin_time or time), 'lvdiff_sha1:' + 'a' * 40]
    if tagged:
        tags += [TAG_REPLICA, TAG_OF + of]
    return lv(name or '%s-vg0-data-%s' % (host, time), 'R-' + time, tags, attr=attr)


POOL = lv('pool', 'P', attr='twi-aotz--', pool='')
VOLUME = lv('data', VOL, attr='Vwi-a-tz--')
T1, T2, T3, T4 = '20260101T000000Z', '20260102T000000Z', '20260103T000000Z', '20260104T000000Z'


def run(src, dst, **kw):
    return plan(report(POOL, VOLUME, *src), report(POOL, *dst), 'vg0', 'data', 'web1', **kw)


def test_first_run_has_nothing_in_common():
    p = run([], [])
    assert p['common'] is None and p['pending'] is None
    assert p['volume'] == {'vg': 'vg0', 'name': 'data', 'uuid': VOL, 'size': 134217728, 'pool': 'pool'}
    assert p['prefix'] == 'web1-vg0-data'
    assert p['snapshot_tags'] == [TAG_SNAP, TAG_OF + VOL] and p['tags'] == [TAG_REPLICA, TAG_OF + VOL]
    assert p['delete_source'] == [] and p['delete_target'] == []


def test_common_is_the_newest_snapshot_with_a_replica_matched_by_origin_not_name():
    # The replica of T2 carries a misleading name: identity comes from its lvdiff_origin tag.
    p = run([snap(T1), snap(T2)], [replica(T1), replica(T3, origin_time=T2)])
    assert p['common'] == {'snapshot': 'data-rep-' + T2, 'uuid': 'S-' + T2, 'size': 134217728,
                           'replica': 'web1-vg0-data-' + T3}
    assert p['pending'] is None


def test_pending_snapshot_is_the_newest_without_replica():
    p = run([snap(T1), snap(T2)], [replica(T1)])
    assert p['common']['snapshot'] == 'data-rep-' + T1
    assert p['pending']['name'] == 'data-rep-' + T2 and p['pending']['replica'] == 'web1-vg0-data-' + T2


def test_other_volumes_snapshots_and_replicas_are_ignored():
    foreign = [
        lv('data-rep-' + T3, 'X1', [TAG_SNAP, TAG_OF + OTHER]),  # another volume's snapshot, same name pattern
        lv('data-rep-' + T4, 'X2'),  # untagged: not ours
        lv('data-snap', 'X3', attr='Vri---tz-k'),
    ]
    p = run([snap(T1)] + foreign, [replica(T1), replica(T2, of=OTHER, host='web2')], keep_source=1, keep_target=1)
    assert [s['name'] for s in p['snapshots']] == ['data-rep-' + T1]
    assert [r['name'] for r in p['replicas']] == ['web1-vg0-data-' + T1]
    assert p['delete_source'] == [] and p['delete_target'] == []


def test_same_volume_name_on_two_hosts_stays_apart():
    other = lv('web2-vg0-data-' + T1, 'R2', [TAG_ORIGIN + 'S-other', TAG_REPLICA, TAG_OF + OTHER])
    dst = [replica(T1, host='web1'), other]
    p = run([snap(T1)], dst)
    assert [r['name'] for r in p['replicas']] == ['web1-vg0-data-' + T1]


def test_untagged_replica_of_an_interrupted_run_is_found_and_finished():
    p = run([snap(T1), snap(T2)], [replica(T1), replica(T2, tagged=False, attr='Vwi-a-tz--')])
    assert p['pending'] is None and p['common']['replica'] == 'web1-vg0-data-' + T2
    assert p['unfinished'] == ['web1-vg0-data-' + T2]


def test_writable_tagged_replica_is_unfinished():
    p = run([snap(T1)], [replica(T1, attr='Vwi-a-tz--')])
    assert p['unfinished'] == ['web1-vg0-data-' + T1]


def test_untagged_lv_with_a_matching_origin_but_another_name_is_not_ours():
    # e.g. a manual lvpatch restore of the same diff: never used, never rotated
    p = run([snap(T1)], [replica(T1, tagged=False, name='restore-test')])
    assert p['replicas'] == [] and p['common'] is None and p['pending']['name'] == 'data-rep-' + T1


def test_lvpatch_work_volume_is_ignored():
    p = run([snap(T1)], [replica(T1, tagged=True, name='web1-vg0-data-%s-lvpatch-tmp' % T1)])
    assert p['replicas'] == []


def test_rotation_keeps_counts_and_the_last_common():
    src = [snap(t) for t in (T1, T2, T3, T4)]
    dst = [replica(t) for t in (T1, T2, T3)]  # T4 pending
    p = run(src, dst, keep_source=1, keep_target=1)
    assert p['common']['snapshot'] == 'data-rep-' + T3 and p['pending']['name'] == 'data-rep-' + T4
    assert p['delete_source'] == ['data-rep-' + T1, 'data-rep-' + T2]  # T3 common, T4 pending kept
    assert p['delete_target'] == ['web1-vg0-data-' + T1, 'web1-vg0-data-' + T2]
    p = run(src, dst + [replica(T4)], keep_source=2, keep_target=3)
    assert p['delete_source'] == ['data-rep-' + T1, 'data-rep-' + T2]
    assert p['delete_target'] == ['web1-vg0-data-' + T1]


def test_rotation_never_removes_the_common_snapshot_even_when_older_ones_lack_replicas():
    src = [snap(t) for t in (T1, T2, T3)]
    dst = [replica(T1)]  # T2 abandoned, T3 pending
    p = run(src, dst, keep_source=1, keep_target=1)
    assert p['common']['snapshot'] == 'data-rep-' + T1
    assert p['delete_source'] == ['data-rep-' + T2]


def test_prefix_and_host_names():
    assert default_prefix('db-1.example.com', 'vg0', 'data') == 'db-1.example.com-vg0-data'
    assert default_prefix('[::1]:22', 'vg0', 'data') == '___1__22-vg0-data'
    assert default_prefix('-x', 'vg0', 'data') == '_-x-vg0-data'
    p = run([], [], prefix='custom')
    assert p['prefix'] == 'custom'
    with pytest.raises(PlanError, match='not a valid LVM name'):
        run([], [], prefix='x' * 100)


@pytest.mark.parametrize('src,msg', [
    ([lv('other', 'O')], 'does not exist'),
    ([lv('data', VOL, attr='-wi-a-----', pool='')], 'not a thin volume'),
])
def test_refusals(src, msg):
    with pytest.raises(PlanError, match=msg):
        plan(report(POOL, *src), report(POOL), 'vg0', 'data', 'web1')


def test_keep_at_least_one():
    with pytest.raises(PlanError, match='at least 1'):
        run([], [], keep_source=0)


def test_rows_accepts_text_dict_and_rows():
    text = report(POOL)
    assert rows(text) == rows(json.loads(text)) == rows(json.loads(text)['report'][0]['lv'])
    with pytest.raises(PlanError):
        rows('not json')


def test_filter_is_registered_and_turns_errors_into_filter_errors():
    from ansible.errors import AnsibleFilterError
    f = FilterModule().filters()['replicate_plan']
    assert f(report(POOL, VOLUME), report(POOL), 'vg0', 'data', 'web1', keep_source='2')['prefix'] == 'web1-vg0-data'
    with pytest.raises(AnsibleFilterError, match='does not exist'):
        f(report(POOL), report(POOL), 'vg0', 'data', 'web1')

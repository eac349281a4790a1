"""One run of the replicate role over all of a host's volumes (module_utils._replicate.advance, behind
the filter replicate_run): the steps decided from the probe and the target's lvs, what each batched module is given,
failures kept to their volume, rotation from the states after the run, and the per-volume results."""
from __future__ import annotations

import json

import pytest

from ansible_collections.lvdiff.thin.plugins.module_utils._replicate import (
    PlanError, TAG_OF, TAG_ORIGIN, TAG_REPLICA, TAG_SNAP, advance)

T0, T1, NOW = '20260101T000000Z', '20260102T000000Z', '20260103T000000Z'
DEFAULTS = {'target_vg': 'vgdst', 'target_pool': 'pool', 'keep_source': 2, 'keep_target': 3,
            'spool_dir': '/spool/out', 'target_spool_dir': '/spool/in/'}
MiB = 1 << 20


def row(vg, name, uuid, tags=(), attr='Vri---tz-k', size=64 * MiB, pool='pool'):
    return {'vg_name': vg, 'lv_name': name, 'lv_uuid': uuid, 'lv_attr': attr, 'lv_tags': ','.join(tags),
            'lv_size': str(size), 'pool_lv': pool}


def volume(name):
    return row('vgsrc', name, 'U-' + name, attr='Vwi-a-tz--')


def snap(lv, time):
    return row('vgsrc', '%s-rep-%s' % (lv, time), 'S-%s-%s' % (lv, time), [TAG_SNAP, TAG_OF + 'U-' + lv])


def replica(lv, time):
    return row('vgdst', 'web1-vgsrc-%s-%s' % (lv, time), 'R-%s-%s' % (lv, time),
               [TAG_ORIGIN + 'S-%s-%s' % (lv, time), TAG_REPLICA, TAG_OF + 'U-' + lv])


POOL_SRC = row('vgsrc', 'pool', 'P1', attr='twi-aotz--', pool='')
POOL_DST = row('vgdst', 'pool', 'P2', attr='twi-aotz--', pool='')


def lvs_result(*rows_, rc=0, stderr=''):
    return {'stdout': json.dumps({'report': [{'lv': list(rows_)}]}), 'rc': rc, 'stderr': stderr}


def probe_of(source_rows, entries):
    return {'lvs': {'vgsrc': list(source_rows)}, 'volumes': entries}


def pr(lv, since=None, changed=True, data=0, discard=0):
    return {'vg': 'vgsrc', 'lv': lv, 'since': since, 'changed_since': changed, 'data_chunks': data,
            'discard_chunks': discard, 'estimated_size': data * 65536 + 4096, 'failed': False}


def started(names, **kw):
    return advance([{'vg': 'vgsrc', 'lv': n} for n in names], 'start', 'web1', DEFAULTS, **kw)


def test_start_applies_defaults_and_says_what_to_read():
    s = advance([{'vg': 'vgsrc', 'lv': 'a', 'keep_target': 5, 'target_vg': 'vgb'}, {'vg': 'vgsrc', 'lv': 'b'}],
                'start', 'web1', DEFAULTS)
    assert s['probe'] == [{'vg': 'vgsrc', 'lv': 'a'}, {'vg': 'vgsrc', 'lv': 'b'}]
    assert s['target_vgs'] == ['vgb', 'vgdst']
    a, b = s['volumes']
    assert (a['keep_target'], a['keep_source'], a['target_vg'], b['target_vg']) == (5, 2, 'vgb', 'vgdst')
    assert a['spool'] == '/spool/out/vgsrc/a' and a['target_spool'] == '/spool/in/web1/vgsrc/a'


def test_first_run_sends_full_images_and_one_failure_stays_with_its_volume():
    s = started(['a', 'nosuch', 'b'])
    probe = probe_of([POOL_SRC, volume('a'), volume('b')],
                     [pr('a', data=1024), {'vg': 'vgsrc', 'lv': 'nosuch', 'failed': True,
                                           'msg': 'volume vgsrc/nosuch does not exist'}, pr('b', data=128)])
    s = advance(s, 'probed', probe, lvs_result(POOL_DST), time=NOW)
    # the plan's refusal, naming the host, rather than the probe's
    assert [v['error'] for v in s['volumes']] == [None, 'plan: volume vgsrc/nosuch does not exist on web1', None]
    assert [x['lv'] for x in s['send']] == ['a', 'b']
    step = s['send'][0]['steps'][0]
    assert step == {'snapshot': 'a-rep-' + NOW, 'create': True, 'base': None,
                    'dest': '/spool/out/vgsrc/a/a-rep-%s.lvdiff' % NOW,
                    'remote': '/spool/in/web1/vgsrc/a/web1-vgsrc-a-%s.lvdiff' % NOW,
                    'pairs': {'replicate_host': 'web1', 'replicate_volume': 'vgsrc/a',
                              'replica': 'web1-vgsrc-a-' + NOW}}
    assert s['send'][0]['snapshot_tags'] == [TAG_SNAP, TAG_OF + 'U-a']

    sent = {'volumes': [
        {'vg': 'vgsrc', 'lv': 'a', 'failed': False, 'changed': True, 'steps': [
            {'snapshot': 'a-rep-' + NOW, 'dest': step['dest'], 'size': 64 * MiB + 9000, 'sha1': 'f' * 40,
             'data_chunks': 1024, 'discard_chunks': 0, 'bytes_sent': 64 * MiB + 9000, 'resumed_from': 0,
             'seconds': 1.5}]},
        {'vg': 'vgsrc', 'lv': 'b', 'failed': True, 'msg': 'transfer interrupted; the next run sends only the rest',
         'resumed_from': 0, 'steps': []}],
        'lvs': {'vgsrc': [POOL_SRC, volume('a'), volume('b'), snap('a', NOW), snap('b', NOW)]}}
    s = advance(s, 'sent', sent)
    assert s['receive'] == [{'vg': 'vgdst', 'pool': 'pool', 'tags': [TAG_REPLICA, TAG_OF + 'U-a'], 'finish': [],
                             'steps': [{'src': step['remote'], 'name': 'web1-vgsrc-a-' + NOW, 'base': None}]}]
    assert s['volumes'][2]['error'].startswith('send: transfer interrupted')

    received = {'volumes': [{'vg': 'vgdst', 'failed': False, 'changed': True, 'finished': [],
                             'steps': [{'name': 'web1-vgsrc-a-' + NOW, 'changed': True}]}],
                'lvs': {'vgdst': [POOL_DST, replica('a', NOW)]}}
    s = advance(s, 'received', received)
    assert s['rotate']['source'] == {'remove': [], 'files': [step['dest']], 'sweep': ['/spool/out/vgsrc/a']}
    assert s['rotate']['target'] == {'remove': [], 'sweep': ['/spool/in/web1/vgsrc/a']}

    s = advance(s, 'rotated', {'remove': [], 'changed': True}, {'remove': [], 'changed': False})
    a, nosuch, b = s['results']
    assert (a['status'], a['changed'], a['replica'], a['bytes_sent']) == (
        'ok', True, 'web1-vgsrc-a-' + NOW, 64 * MiB + 9000)
    assert [c['kind'] for c in a['cycles']] == ['full'] and a['cycles'][0]['data_chunks'] == 1024
    assert a['snapshots'] == ['a-rep-' + NOW] and a['replicas'] == ['web1-vgsrc-a-' + NOW]
    assert nosuch['status'] == 'failed' and b['status'] == 'failed'
    assert b['failed_result']['resumed_from'] == 0 and 'next run sends only the rest' in b['error']
    assert [r['volume'] for r in s['failed']] == ['vgsrc/nosuch', 'vgsrc/b']


def common_state(lv='a'):
    return [POOL_SRC, volume(lv), snap(lv, T0), snap(lv, T1)], [POOL_DST, replica(lv, T0), replica(lv, T1)]


def test_unchanged_volume_gets_no_step_and_no_module_work():
    src, dst = common_state()
    s = advance(started(['a']), 'probed', probe_of(src, [pr('a', since='a-rep-' + T1, changed=False)]),
                lvs_result(*dst), time=NOW)
    assert s['send'] == [] and s['volumes'][0]['steps'] == []
    s = advance(s, 'sent', {'skipped': True})
    assert s['receive'] == [] and s['relay'] == []
    s = advance(s, 'received', {'skipped': True})
    assert s['rotate']['source'] == {'remove': [], 'files': [], 'sweep': []}
    s = advance(s, 'rotated', {'skipped': True}, {'skipped': True})
    r = s['results'][0]
    assert (r['status'], r['changed'], [c['kind'] for c in r['cycles']]) == ('ok', False, ['unchanged'])
    assert r['deleted_source'] == [] and r['replica'] == 'web1-vgsrc-a-' + T1


def test_changed_volume_gets_an_incremental_from_the_last_common_snapshot():
    src, dst = common_state()
    s = advance(started(['a']), 'probed', probe_of(src, [pr('a', since='a-rep-' + T1, data=80, discard=32)]),
                lvs_result(*dst), time=NOW)
    (step,) = s['volumes'][0]['steps']
    assert (step['kind'], step['base'], step['base_replica']) == ('incremental', 'a-rep-' + T1, 'web1-vgsrc-a-' + T1)


def test_pending_snapshot_is_resumed_then_changes_since_it_follow():
    src, dst = common_state()
    src.append(snap('a', NOW[:-3] + '00Z'))  # newer than T1, no replica: pending
    pending = 'a-rep-' + NOW[:-3] + '00Z'
    later = '20260104T000000Z'
    s = advance(started(['a']), 'probed', probe_of(src, [pr('a', since=pending, changed=True, data=3)]),
                lvs_result(*dst), time=later)
    kinds = [(x['kind'], x['snapshot'], x['base'], x['create']) for x in s['volumes'][0]['steps']]
    assert kinds == [('resume', pending, 'a-rep-' + T1, False), ('incremental', 'a-rep-' + later, pending, True)]
    assert s['volumes'][0]['steps'][1]['base_replica'] == s['volumes'][0]['steps'][0]['replica']
    # unchanged since the pending one: only the resume, reported as resume + unchanged
    s = advance(started(['a']), 'probed', probe_of(src, [pr('a', since=pending, changed=False)]),
                lvs_result(*dst), time=later)
    assert [x['kind'] for x in s['volumes'][0]['steps']] == ['resume']


def test_probe_of_another_snapshot_than_the_newest_counts_as_changed():
    src, dst = common_state()
    s = advance(started(['a']), 'probed', probe_of(src, [pr('a', since='a-rep-' + T0, changed=False)]),
                lvs_result(*dst), time=NOW)
    assert [x['kind'] for x in s['volumes'][0]['steps']] == ['incremental']


def test_missing_target_vg_fails_its_volumes_only():
    s = advance([{'vg': 'vgsrc', 'lv': 'a', 'target_vg': 'nosuchvg'}, {'vg': 'vgsrc', 'lv': 'b'}],
                'start', 'web1', DEFAULTS)
    s = advance(s, 'probed', probe_of([POOL_SRC, volume('a'), volume('b')], [pr('a'), pr('b')]),
                lvs_result(POOL_DST, rc=5, stderr='  Volume group "nosuchvg" not found\n'), time=NOW)
    assert s['volumes'][0]['error'] == 'target: volume group nosuchvg does not exist on the target'
    assert [x['lv'] for x in s['send']] == ['b']


def test_missing_target_vg_told_in_the_json_command_log_of_lvm2_2_03_31():
    """lvm2 2.03.31 puts 'Volume group "x" not found' into the JSON report's log, not on stderr."""
    s = advance([{'vg': 'vgsrc', 'lv': 'a', 'target_vg': 'nosuchvg'}, {'vg': 'vgsrc', 'lv': 'b'}],
                'start', 'web1', DEFAULTS)
    log = [{'log_seq_num': '1', 'log_type': 'error', 'log_context': 'processing', 'log_object_type': 'vg',
            'log_object_name': 'nosuchvg', 'log_message': 'Volume group "nosuchvg" not found',
            'log_errno': '-1', 'log_ret_code': '0'}]
    target = {'stdout': json.dumps({'report': [{'lv': [POOL_DST]}], 'log': log}), 'rc': 5, 'stderr': ''}
    s = advance(s, 'probed', probe_of([POOL_SRC, volume('a'), volume('b')], [pr('a'), pr('b')]), target, time=NOW)
    assert s['volumes'][0]['error'] == 'target: volume group nosuchvg does not exist on the target'
    assert [x['lv'] for x in s['send']] == ['b']


def test_relay_mode_sends_without_remote_then_carries_the_files():
    s = advance(started(['a'], transfer='relay'), 'probed', probe_of([POOL_SRC, volume('a')], [pr('a')]),
                lvs_result(POOL_DST), time=NOW)
    (step,) = s['send'][0]['steps']
    assert 'remote' not in step
    sent = {'volumes': [{'failed': False, 'steps': [{'dest': step['dest'], 'sha1': 'a' * 40, 'size': 10}]}]}
    s = advance(s, 'sent', sent)
    assert s['receive'] == [] and s['relay'] == [
        {'src': step['dest'], 'sha1': 'a' * 40, 'dest': '/spool/in/web1/vgsrc/a/web1-vgsrc-a-%s.lvdiff' % NOW}]
    s = advance(s, 'relayed', {'files': [{'failed': False, 'bytes_sent': 10, 'resumed_from': 0, 'seconds': 0.1}]})
    assert len(s['receive']) == 1 and s['receive'][0]['steps'][0]['name'] == 'web1-vgsrc-a-' + NOW


def test_check_mode_sends_nothing_and_reports_estimates_and_rotation():
    src, dst = common_state()
    src.insert(2, snap('a', '20251231T000000Z'))
    s = advance(started(['a'], check_mode=True), 'probed',
                probe_of(src, [pr('a', since='a-rep-' + T1, data=80, discard=32)]), lvs_result(*dst), time=NOW)
    assert s['send'] == []
    s = advance(advance(s, 'sent', {'skipped': True}), 'received', {'skipped': True})
    r = advance(s, 'rotated', {'skipped': True}, {'skipped': True})['results'][0]
    assert r['status'] == 'check' and not r['changed'] and r['bytes_sent'] == 0
    assert r['cycles'][0]['estimated_bytes'] == 80 * 65536 + 4096 and r['cycles'][0]['summary'].startswith('would send')
    assert r['deleted_source'] == ['a-rep-20251231T000000Z']


def test_rotation_failure_is_reported_for_its_volume():
    src, dst = common_state()
    src.insert(2, snap('a', '20251231T000000Z'))
    s = advance(started(['a']), 'probed', probe_of(src, [pr('a', since='a-rep-' + T1, changed=False)]),
                lvs_result(*dst), time=NOW)
    s = advance(advance(s, 'sent', {'skipped': True}), 'received', {'skipped': True})
    assert s['rotate']['source']['remove'] == [{'vg': 'vgsrc', 'lv': 'a-rep-20251231T000000Z', 'tag': TAG_SNAP}]
    s = advance(s, 'rotated', {'remove': [{'failed': True, 'msg': 'not removed: it has no tag x'}]}, {'skipped': True})
    assert s['results'][0]['status'] == 'failed' and s['results'][0]['error'] == 'rotate: not removed: it has no tag x'


def test_results_count_must_match_and_stage_must_exist():
    s = advance(started(['a']), 'probed', probe_of([POOL_SRC, volume('a')], [pr('a')]), lvs_result(POOL_DST), time=NOW)
    with pytest.raises(PlanError, match='send returned 0 results for 1 items'):
        advance(s, 'sent', {'volumes': []})
    with pytest.raises(PlanError, match='unknown stage'):
        advance(s, 'sideways')

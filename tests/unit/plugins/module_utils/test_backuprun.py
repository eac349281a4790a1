"""One backup run of a host's volumes (module_utils._backuprun.advance, behind the filter backup_run), driven
stage by stage against a small world: source snapshots as lvs rows, and a real repository whose backups are
written by the collection's writer (tests/support/repository.put_backup) where send would put them, and read
back with repository_info's own report()."""
from __future__ import annotations

import os

import pytest

from ansible_collections.lvdiff.thin.plugins.module_utils._backuprun import TAG_BAK_SNAP, advance
from ansible_collections.lvdiff.thin.plugins.module_utils._replicate import TAG_OF, PlanError
from ansible_collections.lvdiff.thin.plugins.modules.repository_info import report
from ansible_collections.lvdiff.thin.tests.support.repository import put_backup

T1, T2, T3, T4 = '2026-12-01T03:00:00Z', '2026-12-02T03:00:00Z', '2026-12-03T03:00:00Z', '2026-12-04T03:00:00Z'
MiB = 1 << 20


def name_time(iso):
    return iso.replace('-', '').replace(':', '')


def row(name, uuid, tags=(), attr='Vri---tz-k', pool='pool'):
    return {'vg_name': 'vg0', 'lv_name': name, 'lv_uuid': uuid, 'lv_attr': attr, 'lv_tags': ','.join(tags),
            'lv_size': str(64 * MiB), 'pool_lv': pool, 'thin_id': '1'}


class World:
    """One source host's LVM (rows) and its share of the repository under tmp_path/repo."""

    def __init__(self, tmp_path, host='web1', lvs=('data',)):
        self.tmp, self.host = tmp_path, host
        self.root = str(tmp_path / 'repo')
        os.makedirs(self.root, exist_ok=True)
        self.rows = [row('pool', 'P', attr='twi-aotz--', pool='')]
        self.rows += [row(lv, 'U-' + lv, attr='Vwi-a-tz--') for lv in lvs]
        self.letters = {}
        self.changed = dict((lv, True) for lv in lvs)
        self.unprobed = {}

    def snaps(self, lv):
        return sorted(r['lv_name'] for r in self.rows if TAG_OF + 'U-' + lv in r['lv_tags'].split(','))

    def take(self, lv, name):
        if name not in self.letters:
            # one letter per snapshot, shared by every world in the test (put_backup's UUID-<letter>)
            self.letters[name] = chr(ord('A') + len(put_letters))
            put_letters.append(name)
        uuid = 'UUID-' + self.letters[name]
        if not any(r['lv_name'] == name for r in self.rows):
            self.rows.append(row(name, uuid, [TAG_BAK_SNAP, TAG_OF + 'U-' + lv]))

    def probe(self, state):
        out = []
        for item in state['probe']:
            lv = item['lv']
            if lv in self.unprobed:
                out.append(dict(item, failed=True, msg=self.unprobed[lv], changed=False))
                continue
            snaps = self.snaps(lv)
            out.append(dict(item, uuid='U-' + lv, size=64 * MiB, since=snaps[-1] if snaps else None,
                            changed_since=self.changed[lv] or not snaps, data_chunks=3, discard_chunks=0,
                            estimated_size=3 * 65536 + 4096, chunk_size=65536, changed=False, failed=False))
        return {'lvs': {'vg0': [dict(r) for r in self.rows]}, 'volumes': out}

    def repository(self):
        return dict(report(self.root, self.host, list_files=True), changed=False)

    def send(self, state, fail=None):
        """send's result: each step's snapshot taken, its backup written where remote says (fail: (lv, step
        index) whose transfer fails after its snapshot was taken)."""
        vols = []
        for item in state['send']:
            steps, failed = [], False
            for index, s in enumerate(item['steps']):
                assert s['pairs'] == {'backup_host': self.host, 'backup_vg': 'vg0', 'backup_lv': item['lv']}
                self.take(item['lv'], s['snapshot'])
                if fail == (item['lv'], index):
                    failed = True
                    break
                base = self.letters[s['base']] if s['base'] else None
                path = put_backup(self.tmp, (self.host, 'vg0', item['lv']), self.letters[s['snapshot']],
                                  s['created'], base)
                assert path == s['remote']
                steps.append({'snapshot': s['snapshot'], 'created': s['create'], 'base': s['base'],
                              'dest': s['dest'], 'remote': s['remote'], 'changed': True,
                              'size': os.path.getsize(path), 'sha1': 'f' * 40, 'data_chunks': 3,
                              'discard_chunks': 0, 'checks': 1, 'bytes_sent': os.path.getsize(path),
                              'resumed_from': 0 if s['create'] else 100, 'seconds': 2.0})
            res = {'vg': 'vg0', 'lv': item['lv'], 'changed': True, 'failed': failed, 'steps': steps}
            if failed:
                res.update(msg='transfer failed: connection reset', bytes_sent=512, resumed_from=0)
            vols.append(res)
        return {'lvs': {'vg0': [dict(r) for r in self.rows]}, 'volumes': vols, 'changed': True}

    def rotate(self, state):
        out = []
        for item in state['rotate']['remove']:
            assert item['tag'] == TAG_BAK_SNAP
            self.rows = [r for r in self.rows if r['lv_name'] != item['lv']]
            out.append({'vg': item['vg'], 'lv': item['lv'], 'removed': True, 'failed': False})
        sweep = [{'path': p, 'removed': [], 'failed': False} for p in state['rotate']['sweep']]
        return {'removed': ['vg0/' + i['lv'] for i in state['rotate']['remove']], 'files_removed': [],
                'remove': out, 'files': [], 'sweep': sweep}


put_letters = []


@pytest.fixture(autouse=True)
def fresh_letters():
    del put_letters[:]


def prune_result(state, pruned=None):
    return {'results': [{'volumes': [dict(vol, failed=False, kept=[], pruned=list((pruned or {}).get(vol['lv'], [])),
                                          orphans=[], skipped=[]) for vol in call['volumes']]}
                        for call in state['prune']]}


def defaults(world, **kw):
    return dict({'root': world.root, 'spool_dir': '/var/spool/bak/', 'policy': {'keep_last': 7},
                 'keep_snapshots': 2}, **kw)


def run(world, now, volumes=None, fail=None, check_mode=False, pruned=None, **kw):
    """A whole run; returns every state, by stage."""
    volumes = volumes or [{'vg': 'vg0', 'lv': 'data'}]
    states = {'start': advance(volumes, 'start', world.host, defaults(world, **kw), now=now, check_mode=check_mode)}
    states['probed'] = advance(states['start'], 'probed', world.probe(states['start']), world.repository())
    send = world.send(states['probed'], fail) if states['probed']['send'] else {'skipped': True}
    states['sent'] = advance(states['probed'], 'sent', send)
    states['pruned'] = advance(states['sent'], 'pruned', prune_result(states['sent'], pruned))
    rotate = world.rotate(states['pruned']) if not check_mode else {'skipped': True}
    states['rotated'] = advance(states['pruned'], 'rotated', rotate)
    return states


def steps_of(state, lv='data'):
    return next(v['steps'] for v in state['send'] if v['lv'] == lv)


def test_start_says_what_to_read_and_refuses_bad_settings(tmp_path):
    w = World(tmp_path)
    s = advance([{'vg': 'vg0', 'lv': 'data'}, {'vg': 'vg0', 'lv': 'db', 'policy': {'keep_daily': 3}}],
                'start', 'web1', defaults(w), now='2026-12-01T04:00:00+01:00')
    assert s['probe'] == [{'vg': 'vg0', 'lv': 'data'}, {'vg': 'vg0', 'lv': 'db'}]
    assert s['repository'] == [{'host': 'web1', 'vg': 'vg0', 'lv': 'data'}, {'host': 'web1', 'vg': 'vg0', 'lv': 'db'}]
    assert (s['now'], s['time']) == (T1, name_time(T1))
    assert [v['policy'] for v in s['volumes']] == [{'keep_last': 7}, {'keep_daily': 3}]
    with pytest.raises(PlanError, match='unknown key keep_lats'):
        advance([{'vg': 'vg0', 'lv': 'data', 'policy': {'keep_lats': 1}}], 'start', 'web1', defaults(w))
    with pytest.raises(PlanError, match='keep_snapshots must be'):
        advance([{'vg': 'vg0', 'lv': 'data'}], 'start', 'web1', defaults(w, keep_snapshots=0))
    with pytest.raises(PlanError, match="LV name '../x'"):
        advance([{'vg': 'vg0', 'lv': '../x'}], 'start', 'web1', defaults(w))
    with pytest.raises(PlanError, match='unknown stage'):
        advance(s, 'received')


def test_first_run_sends_a_full_image_then_incrementals_against_the_newest_backups_snapshot(tmp_path):
    w = World(tmp_path)
    first = run(w, T1)
    assert steps_of(first['probed']) == [{
        'snapshot': 'data-bak-' + name_time(T1), 'create': True, 'base': None,
        'dest': '/var/spool/bak/vg0/data/data-bak-%s.lvdiff' % name_time(T1),
        'remote': os.path.join(w.root, 'web1/vg0/data/%s-full.lvdiff' % name_time(T1)),
        'created': T1, 'pairs': {'backup_host': 'web1', 'backup_vg': 'vg0', 'backup_lv': 'data'}}]
    assert first['probed']['send'][0]['snapshot_tags'] == [TAG_BAK_SNAP, TAG_OF + 'U-data']
    assert first['sent']['prune'] == [{'policy': {'keep_last': 7},
                                       'volumes': [{'host': 'web1', 'vg': 'vg0', 'lv': 'data'}]}]
    (res,) = first['rotated']['results']
    assert (res['status'], res['changed']) == ('ok', True)
    assert res['backup'] == 'web1/vg0/data/%s-full.lvdiff' % name_time(T1)
    assert [(s['kind'], s['sent'], s['rate']) for s in res['steps']] == [('full', True, res['bytes_sent'] // 2)]
    assert first['rotated']['failed'] == []

    second = run(w, T2)
    (step,) = steps_of(second['probed'])
    assert (step['base'], step['remote']) == ('data-bak-' + name_time(T1),
                                              os.path.join(w.root, 'web1/vg0/data/%s-incr.lvdiff' % name_time(T2)))
    chains = w.repository()['volumes'][0]['chains']
    assert chains[0]['ids'] == ['web1/vg0/data/%s-full.lvdiff' % name_time(T1),
                                'web1/vg0/data/%s-incr.lvdiff' % name_time(T2)]
    assert second['rotated']['results'][0]['steps'][0]['kind'] == 'incremental'


def test_full_every_makes_a_full_image_with_the_reason(tmp_path):
    w = World(tmp_path)
    policy = {'keep_last': 7, 'full_every': 1}
    run(w, T1, policy=policy)
    assert steps_of(run(w, T2, policy=policy)['probed'])[0]['base'] is not None
    third = run(w, T3, policy=policy)
    (step,) = steps_of(third['probed'])
    assert step['base'] is None and step['remote'].endswith('%s-full.lvdiff' % name_time(T3))
    assert 'full_every is 1' in third['rotated']['results'][0]['steps'][0]['why']
    assert len(w.repository()['volumes'][0]['chains']) == 2


def test_encryption_switched_on_or_off_starts_a_new_chain_with_the_reason(tmp_path):
    w = World(tmp_path)
    run(w, T1)  # World writes plain files
    same = run(w, T2, encrypted='False')  # a templated flag may come as text
    assert steps_of(same['probed'])[0]['base'] is not None
    on = run(w, T3, encrypted=True)
    (step,) = steps_of(on['probed'])
    assert step['base'] is None and step['remote'].endswith('%s-full.lvdiff' % name_time(T3))
    assert on['rotated']['results'][0]['steps'][0]['why'] == (
        'encryption switched on since web1/vg0/data/%s-incr.lvdiff: a chain is all encrypted or all plain'
        % name_time(T2))


def test_unchanged_volume_sends_nothing_and_reports_no_change(tmp_path):
    w = World(tmp_path)
    run(w, T1)
    w.changed['data'] = False
    again = run(w, T2)
    assert again['probed']['send'] == []
    (res,) = again['rotated']['results']
    assert (res['status'], res['changed'], res['steps']) == ('ok', False, [])
    assert res['summary'] == 'vg0/data: unchanged since data-bak-%s' % name_time(T1)
    assert again['sent']['prune'][0]['volumes'] == [{'host': 'web1', 'vg': 'vg0', 'lv': 'data'}]  # still pruned


def test_a_snapshot_left_by_an_interrupted_run_is_sent_first_then_a_new_one(tmp_path):
    w = World(tmp_path)
    run(w, T1)
    broken = run(w, T2, fail=('data', 0))
    (res,) = broken['rotated']['results']
    assert res['status'] == 'failed' and res['error'].startswith('send: transfer failed')
    assert broken['pruned']['rotate']['remove'] == []  # the base and the pending snapshot stay
    assert w.snaps('data') == ['data-bak-' + name_time(T1), 'data-bak-' + name_time(T2)]

    w.changed['data'] = False  # even unchanged since the pending snapshot, it must still be sent
    third = run(w, T3)
    resume, new = steps_of(third['probed'])
    assert resume == dict(resume, snapshot='data-bak-' + name_time(T2), create=False,
                          base='data-bak-' + name_time(T1), created=T2,
                          remote=os.path.join(w.root, 'web1/vg0/data/%s-incr.lvdiff' % name_time(T2)))
    assert (new['snapshot'], new['base'], new['create']) == ('data-bak-' + name_time(T3), resume['snapshot'], True)
    res = third['rotated']['results'][0]
    assert [s['kind'] for s in res['steps']] == ['resume', 'incremental']
    assert [s['resumed_from'] for s in res['steps']] == [100, 0]  # what the .part kept, in the role's output
    assert '(resumed at byte 100)' in res['steps'][0]['summary']
    assert w.repository()['volumes'][0]['chains'][0]['ids'] == [
        'web1/vg0/data/%s-%s.lvdiff' % (name_time(t), k) for t, k in ((T1, 'full'), (T2, 'incr'), (T3, 'incr'))]
    assert third['pruned']['rotate']['remove'] == [{'vg': 'vg0', 'lv': 'data-bak-' + name_time(T1),
                                                    'tag': TAG_BAK_SNAP}]
    assert res['removed'] == ['data-bak-' + name_time(T1)]


def test_base_snapshot_gone_makes_a_full_image_with_the_reason(tmp_path):
    w = World(tmp_path)
    run(w, T1)
    w.rows = [r for r in w.rows if TAG_BAK_SNAP not in r['lv_tags']]  # removed by hand
    again = run(w, T2)
    (step,) = steps_of(again['probed'])
    assert step['base'] is None
    why = again['rotated']['results'][0]['steps'][0]['why']
    assert why == 'the snapshot of web1/vg0/data/%s-full.lvdiff, the base an incremental needs, is gone' % name_time(T1)


def test_two_hosts_with_the_same_vg_and_lv_have_their_own_backups(tmp_path):
    web1, web2 = World(tmp_path, 'web1'), World(tmp_path, 'web2')
    run(web1, T1)
    run(web1, T2)
    first2 = run(web2, T3)
    (step,) = steps_of(first2['probed'])
    assert step['base'] is None  # web1's backups are not web2's
    assert step['remote'] == os.path.join(web1.root, 'web2/vg0/data/%s-full.lvdiff' % name_time(T3))
    assert step['pairs']['backup_host'] == 'web2'
    assert steps_of(run(web1, T4)['probed'])[0]['base'] == 'data-bak-' + name_time(T2)


def test_a_failed_volume_does_not_stop_the_others(tmp_path):
    w = World(tmp_path, lvs=('data', 'db', 'logs'))
    w.unprobed['db'] = 'thin_delta failed'
    vols = [{'vg': 'vg0', 'lv': lv} for lv in ('data', 'db', 'logs')]
    s = run(w, T1, volumes=vols, fail=('logs', 0))
    assert [x['lv'] for x in s['probed']['send']] == ['data', 'logs']
    assert s['sent']['prune'][0]['volumes'] == [{'host': 'web1', 'vg': 'vg0', 'lv': 'data'}]
    assert [(r['volume'], r['status']) for r in s['rotated']['results']] == [
        ('vg0/data', 'ok'), ('vg0/db', 'failed'), ('vg0/logs', 'failed')]
    assert [r['error'] for r in s['rotated']['failed']] == [
        'probe: thin_delta failed', 'send: transfer failed: connection reset']
    assert s['pruned']['rotate']['sweep'] == ['/var/spool/bak/vg0/data']


def test_an_unreadable_repository_fails_every_volume(tmp_path):
    w = World(tmp_path)
    s = advance([{'vg': 'vg0', 'lv': 'data'}], 'start', 'web1', defaults(w), now=T1)
    s = advance(s, 'probed', w.probe(s), {'failed': True, 'msg': 'cannot open the backup repository /x'})
    assert s['send'] == [] and s['volumes'][0]['error'] == 'repository: cannot open the backup repository /x'


def test_rotation_keeps_the_base_of_the_next_incremental_and_what_a_failed_send_needs(tmp_path):
    w = World(tmp_path)
    run(w, T1, keep_snapshots=1)
    second = run(w, T2, keep_snapshots=1)
    assert second['pruned']['rotate']['remove'] == [{'vg': 'vg0', 'lv': 'data-bak-' + name_time(T1),
                                                     'tag': TAG_BAK_SNAP}]
    third = run(w, T3, keep_snapshots=1, fail=('data', 0))
    assert third['pruned']['rotate']['remove'] == []
    assert w.snaps('data') == ['data-bak-' + name_time(T2), 'data-bak-' + name_time(T3)]
    fourth = run(w, T4, keep_snapshots=1)
    assert [s['base'] for s in steps_of(fourth['probed'])] == ['data-bak-' + name_time(t) for t in (T2, T3)]
    assert w.snaps('data') == ['data-bak-' + name_time(T4)]


def test_check_mode_plans_and_reports_but_sends_nothing(tmp_path):
    w = World(tmp_path)
    run(w, T1)
    s = run(w, T2, check_mode=True, pruned={'data': ['web1/vg0/data/old']})
    assert s['probed']['send'] == [] and w.snaps('data') == ['data-bak-' + name_time(T1)]
    (res,) = s['rotated']['results']
    assert (res['status'], res['changed'], res['bytes_sent']) == ('check', True, 0)
    assert res['steps'][0]['summary'] == 'would send incremental data-bak-%s against data-bak-%s -> %s' % (
        name_time(T2), name_time(T1), os.path.join(w.root, 'web1/vg0/data/%s-incr.lvdiff' % name_time(T2)))
    assert 'would prune 1 backup(s)' in res['summary']
    assert len(w.repository()['volumes'][0]['files']) == 1

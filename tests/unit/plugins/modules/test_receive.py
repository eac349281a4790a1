"""receive: many volumes' diffs into replicas in one run, on the scripted LVM host of test_restore (the real
Lvm and _restore; devices are files, so contents are compared). Per-volume isolation, order, the lvs read
at the start and the end, check mode, keep_diffs, argument checks and SIGTERM."""

import os
import signal

import pytest

from ansible_collections.lvdiff.thin.plugins.module_utils import _restore
from ansible_collections.lvdiff.thin.plugins.modules import receive

from ansible_collections.lvdiff.thin.tests.support.lvmhost import lvm_host, chain

TAGS = ['lvdiff_rep_replica', 'lvdiff_rep_of:V']
REPLICA_ATTR = 'Vri---tz-k'


@pytest.fixture
def env(tmp_path, monkeypatch):
    """(host with VGs vg and vg2, full diff, incremental diff, source content, base content)."""
    monkeypatch.setattr(_restore, 'LOCK_DIR', str(tmp_path / 'run-lvdiff.thin'))
    host = lvm_host(tmp_path, monkeypatch, vgs=('vg', 'vg2'))
    monkeypatch.setattr(receive, 'Runner', lambda module: host)
    return (host,) + chain(tmp_path, host)


def volumes(full, inc):
    return [{'vg': 'vg', 'pool': 'pool', 'tags': TAGS,
             'steps': [{'src': full, 'name': 'a1'}, {'src': inc, 'name': 'a2', 'base': 'a1'}]},
            {'vg': 'vg2', 'pool': 'pool', 'tags': ['other'], 'steps': [{'src': full, 'name': 'b1'}]}]


@pytest.mark.parametrize('jobs', [1, 2])
def test_two_volumes_in_one_run(env, run_module, jobs):
    host, full, inc, src, base = env
    rc, res = run_module(receive, {'volumes': volumes(full, inc), 'keep_diffs': True, 'jobs': jobs})
    assert rc == 0 and res['changed'] is True
    assert [(v['vg'], v['failed'], v['changed']) for v in res['volumes']] == [('vg', False, True), ('vg2', False, True)]
    assert [s['name'] for s in res['volumes'][0]['steps']] == ['a1', 'a2']
    assert res['volumes'][0]['steps'][1]['base'] == 'a1' and res['volumes'][0]['steps'][1]['checks'] >= 1
    assert host.content('vg', 'a1') == base and host.content('vg', 'a2') == src and host.content('vg2', 'b1') == base
    for vg, name, tags in (('vg', 'a1', TAGS), ('vg', 'a2', TAGS), ('vg2', 'b1', ['other'])):
        attr, have = host.state(vg, name)
        assert attr == REPLICA_ATTR and set(tags) <= set(have)
    # one lvs over both VGs at the start and at the end, and its rows returned
    lvs_calls = [c for c in host.calls if c[0] == 'lvs']
    assert host.calls[0][-2:] == ['vg', 'vg2'] and host.calls[-1][-2:] == ['vg', 'vg2'] and host.calls[-1][0] == 'lvs'
    # and one for a2, whose base a1 is new; none for a temporary volume just made (lvcreate's is known)
    assert len(lvs_calls) == 2 + 1
    # the replicas deactivated at the end, one lvchange per VG
    offs = [c for c in host.calls if c[:3] == ['lvchange', '--activate', 'n']]
    assert offs == [['lvchange', '--activate', 'n', 'vg/a1', 'vg/a2'], ['lvchange', '--activate', 'n', 'vg2/b1']]
    assert sorted(r['lv_name'] for r in res['lvs']['vg']) == ['a1', 'a2', 'pool']
    a2 = [r for r in res['lvs']['vg'] if r['lv_name'] == 'a2'][0]
    assert (a2['lv_attr'], a2['pool_lv']) == (REPLICA_ATTR, 'pool')
    assert 'lvdiff_rep_replica' in a2['lv_tags'].split(',')
    assert os.path.exists(full) and os.path.exists(inc)

    for check_mode in (False, True):
        host.calls = []
        rc, again = run_module(receive, {'volumes': volumes(full, inc), 'keep_diffs': True, 'jobs': jobs},
                               check_mode=check_mode)
        assert rc == 0 and again['changed'] is False and host.changes() == []
        assert [s['sha1'] for s in again['volumes'][0]['steps']] == [s['sha1'] for s in res['volumes'][0]['steps']]


def test_a_failed_volume_is_its_own_result(env, run_module):
    host, full, inc, src, base = env
    bad = full + '.bad'
    data = bytearray(open(full, 'rb').read())
    data[len(data) // 2] ^= 0xff
    open(bad, 'wb').write(bytes(data))
    vols = volumes(full, inc)
    vols[0]['steps'][0]['src'] = bad  # a1 fails: a2 is skipped
    vols.insert(1, {'vg': 'vgnone', 'steps': [{'src': full, 'name': 'c1'}]})
    rc, res = run_module(receive, {'volumes': vols, 'keep_diffs': True})
    assert rc == 0 and res['changed'] is True and 'failed' not in res
    v0, v1, v2 = res['volumes']
    assert v0['failed'] and v0['msg'].startswith('corrupt diff') and v0['steps'] == [] and v0['changed'] is False
    assert v1['failed'] and v1['msg'] == 'volume group vgnone does not exist on this host' and v1['vg'] == 'vgnone'
    assert not v2['failed'] and v2['steps'][0]['changed']
    assert sorted(host.vgs['vg']) == ['pool'] and sorted(host.vgs['vg2']) == ['b1', 'pool']


def test_a_failed_later_step_keeps_the_earlier_ones_in_the_result(env, run_module):
    host, full, inc, src, base = env
    vols = volumes(full, inc)[:1]
    vols[0]['steps'][1]['base'] = 'nope'
    rc, res = run_module(receive, {'volumes': vols, 'keep_diffs': True})
    v = res['volumes'][0]
    assert v['failed'] and v['msg'] == 'base volume vg/nope does not exist'
    assert [s['name'] for s in v['steps']] == ['a1'] and v['changed'] is True and res['changed'] is True


def test_check_mode_changes_nothing_and_verifies_chained_steps(env, run_module):
    host, full, inc, src, base = env
    rc, res = run_module(receive, {'volumes': volumes(full, inc)}, check_mode=True)
    assert rc == 0 and res['changed'] is True and host.changes() == []
    assert [v['failed'] for v in res['volumes']] == [False, False]
    steps = res['volumes'][0]['steps']
    assert [s['changed'] for s in steps] == [True, True] and all(len(s['sha1']) == 40 for s in steps)
    assert [s['src_removed'] for s in steps] == [True, True]  # would be
    assert os.path.exists(full) and os.path.exists(inc) and not os.path.exists(_restore.LOCK_DIR)


def test_diffs_are_removed_once_their_replica_exists_symlinks_never(env, run_module, tmp_path):
    host, full, inc, src, base = env
    link = str(tmp_path / 'link.lvdiff')
    os.symlink(inc, link)
    vols = volumes(full, link)[:1]
    rc, res = run_module(receive, {'volumes': vols})
    assert rc == 0 and not res['volumes'][0]['failed']
    assert [s['src_removed'] for s in res['volumes'][0]['steps']] == [True, False]
    assert not os.path.exists(full) and os.path.islink(link) and os.path.exists(inc)


def test_finish_then_steps(env, run_module):
    host, full, inc, src, base = env
    host.add('vg', 'old', b'x' * 4096, tags=['lvdiff_rep_of:V'])
    vols = [{'vg': 'vg', 'pool': 'pool', 'tags': TAGS, 'finish': ['old'], 'steps': [{'src': full, 'name': 'a1'}]}]
    rc, res = run_module(receive, {'volumes': vols, 'keep_diffs': True})
    assert rc == 0 and res['volumes'][0]['finished'] == ['old'] and res['changed'] is True
    assert host.state('vg', 'old') == (REPLICA_ATTR, sorted(TAGS))
    rc, res = run_module(receive, {'volumes': vols, 'keep_diffs': True})
    assert res['volumes'][0]['finished'] == [] and res['changed'] is False
    vols[0]['finish'] = ['missing']
    rc, res = run_module(receive, {'volumes': vols, 'keep_diffs': True})
    assert res['volumes'][0]['failed'] and res['volumes'][0]['msg'] == 'replica vg/missing to finish does not exist'


def test_an_existing_replica_is_finished(env, run_module):
    host, full, inc, src, base = env
    vols = volumes(full, inc)[:1]
    vols[0]['steps'] = vols[0]['steps'][:1]
    _restore.patch(receive.Lvm(host), full, 'vg', 'a1', pool='pool', final={'permission': 'rw', 'activate': True})
    rc, res = run_module(receive, {'volumes': vols, 'keep_diffs': True})
    assert rc == 0 and res['volumes'][0]['steps'][0]['changed'] is True
    assert host.state('vg', 'a1')[0] == REPLICA_ATTR and set(TAGS) <= set(host.state('vg', 'a1')[1])


@pytest.mark.parametrize('vol,msg', [
    ({'vg': 'vg', 'tags': ['-x']}, "'-x' is not a valid LVM tag"),
    ({'vg': '-vg'}, "volume group '-vg' is not a valid LVM name"),
    ({'vg': 'vg', 'finish': ['a b']}, "replica 'a b' is not a valid LVM name"),
    ({'vg': 'vg', 'steps': [{'src': '/x', 'name': 'a', 'base': '--all'}]}, "base replica '--all' is not a valid"),
])
def test_bad_arguments_fail_the_run_before_anything(env, run_module, vol, msg):
    host = env[0]
    rc, res = run_module(receive, {'volumes': [volumes(env[1], env[2])[0], vol]})
    assert rc == 1 and res['msg'].startswith(msg) and host.calls == []


def test_jobs_must_be_positive(env, run_module):
    rc, res = run_module(receive, {'volumes': [], 'jobs': 0})
    assert rc == 1 and res['msg'] == 'jobs must be at least 1, not 0'


def test_sigterm_cleans_up_the_step_and_starts_nothing_more(env, run_module):
    host, full, inc, src, base = env
    real_create = host._lvcreate

    def signalled(args):  # SIGTERM arrives while lvcreate runs, which still makes its volume
        real_create(args)
        os.kill(os.getpid(), signal.SIGTERM)

    host._lvcreate = signalled
    rc, res = run_module(receive, {'volumes': volumes(full, inc), 'keep_diffs': True})
    assert rc == 1 and res['msg'].startswith('terminated by a signal')
    assert sorted(host.vgs['vg']) == ['pool'] and sorted(host.vgs['vg2']) == ['pool']
    assert [c for c in host.calls if c[0] == 'lvcreate'] == [host.calls[1]]  # the second volume never started

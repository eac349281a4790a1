"""_restore (making a volume from a diff: lvpatch's core, shared with receive) and Lvm.scratch_volume,
on a scripted LVM host: the real Lvm sends its argv to LvmHost, which keeps a table of volumes whose
devices are files, so that the diff is really applied, and what is left afterwards (tags, state,
content, temporary volumes) is what is asserted. Real LVM runs in the integration targets lvpatch and
receive; the host here is for what the guest cannot do on demand (failures at a given command)."""

import os
import threading

import pytest

from ansible_collections.lvdiff.thin.plugins.module_utils import _lvm, _restore
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import CommandError, LvdiffError, Terminated

from ansible_collections.lvdiff.thin.tests.support.lvmhost import chain, lvm_host


@pytest.fixture
def host(tmp_path, monkeypatch):
    monkeypatch.setattr(_restore, 'LOCK_DIR', str(tmp_path / 'run-lvdiff.thin'))
    return lvm_host(tmp_path, monkeypatch)


def lvm_of(host):
    return _lvm.Lvm(host)


REPLICA_ATTR = 'Vri---tz-k'


# --- patch: a new volume ------------------------------------------------------------------------------------

def test_a_full_image_becomes_a_finished_tagged_volume(tmp_path, host):
    full, inc, src, base = chain(tmp_path, host)
    res = _restore.patch(lvm_of(host), full, 'vg', 'x', pool='pool', tags=['t1', 'of:A'])
    assert res['changed'] is True and res['lv'] == 'x' and (res['permission'], res['active']) == ('r', False)
    attr, tags = host.state('vg', 'x')
    assert attr == REPLICA_ATTR
    assert tags == sorted(['t1', 'of:A', 'lvdiff_sha1:' + res['sha1'], 'lvdiff_origin:' + res['origin_uuid']])
    assert host.content('vg', 'x') == base
    assert sorted(host.vgs['vg']) == ['pool', 'x']


def test_an_incremental_replaces_the_inherited_identity_and_keeps_the_callers_tags(tmp_path, host):
    full, inc, src, base = chain(tmp_path, host)
    first = _restore.patch(lvm_of(host), full, 'vg', 'r1', pool='pool', tags=['rep'])
    res = _restore.patch(lvm_of(host), inc, 'vg', 'r2', base='r1', tags=['rep', 'more'])
    assert res['changed'] is True and res['base_checked'] is True
    attr, tags = host.state('vg', 'r2')
    assert attr == REPLICA_ATTR
    assert tags == sorted(['rep', 'more', 'lvdiff_sha1:' + res['sha1'], 'lvdiff_origin:' + res['origin_uuid']])
    assert 'lvdiff_sha1:' + first['sha1'] not in tags
    assert host.content('vg', 'r2') == src
    # the source's identity and the caller's tags given by lvcreate, then one lvchange for the diff's tag,
    # the inherited identity (this scripted LVM passes a snapshot its base's tags) and the final state
    made = [c for c in host.changes() if c[0] == 'lvcreate' and 'r2-lvpatch-tmp' in c][0]
    assert [made[i + 1] for i, a in enumerate(made) if a == '--addtag'] == [
        'lvdiff_origin:' + res['origin_uuid'], 'rep', 'more']
    tag_calls = [c for c in host.changes() if c[0] == 'lvchange' and '--deltag' in c]
    assert len(tag_calls) == 1 and tag_calls[0].count('--addtag') == 1 and '--permission' in tag_calls[0]
    assert sorted(tag_calls[0][i + 1] for i, a in enumerate(tag_calls[0]) if a == '--deltag') == [
        'lvdiff_origin:' + first['origin_uuid'], 'lvdiff_sha1:' + first['sha1']]


def test_a_writable_active_volume_when_asked(tmp_path, host):
    full, inc, src, base = chain(tmp_path, host)
    _restore.patch(lvm_of(host), full, 'vg', 'x', pool='pool', final={'permission': 'rw', 'activate': True})
    assert host.state('vg', 'x')[0] == 'Vwi-a-tz--'


def test_a_bad_tag_is_refused_before_anything(tmp_path, host):
    full, inc, src, base = chain(tmp_path, host)
    with pytest.raises(LvdiffError, match=r"^'-x' is not a valid LVM tag"):
        _restore.patch(lvm_of(host), full, 'vg', 'x', pool='pool', tags=['-x'])
    assert host.calls == [] and not os.path.exists(_restore.LOCK_DIR)


# --- patch: an existing volume --------------------------------------------------------------------------------

def test_an_existing_volume_of_this_diff_gets_the_missing_tags_only(tmp_path, host):
    full, inc, src, base = chain(tmp_path, host)
    res = _restore.patch(lvm_of(host), full, 'vg', 'x', pool='pool', final={'permission': 'rw', 'activate': True})
    host.calls = []
    again = _restore.patch(lvm_of(host), full, 'vg', 'x', pool='pool', tags=['t1'], check_mode=True)
    assert again['changed'] is True and host.changes() == []
    again = _restore.patch(lvm_of(host), full, 'vg', 'x', pool='pool', tags=['t1'])
    assert again['changed'] is True and again['sha1'] == res['sha1']
    # lvpatch leaves permission and activation of an existing volume alone
    tags = sorted(['t1', 'lvdiff_sha1:' + res['sha1'], 'lvdiff_origin:' + res['origin_uuid']])
    assert host.state('vg', 'x') == ('Vwi-a-tz--', tags)
    assert (again['permission'], again['active']) == ('rw', True)
    host.calls = []
    assert _restore.patch(lvm_of(host), full, 'vg', 'x', pool='pool', tags=['t1'])['changed'] is False
    assert host.changes() == []


def test_refinish_gives_an_existing_volume_the_final_state(tmp_path, host):
    full, inc, src, base = chain(tmp_path, host)
    _restore.patch(lvm_of(host), full, 'vg', 'x', pool='pool', final={'permission': 'rw', 'activate': True})
    res = _restore.patch(lvm_of(host), full, 'vg', 'x', pool='pool', tags=['t1'], refinish=True)
    assert res['changed'] is True and host.state('vg', 'x')[0] == REPLICA_ATTR
    assert (res['permission'], res['active']) == ('r', False)
    assert _restore.patch(lvm_of(host), full, 'vg', 'x', pool='pool', tags=['t1'], refinish=True)['changed'] is False


def test_an_existing_volume_of_another_diff_is_refused(tmp_path, host):
    full, inc, src, base = chain(tmp_path, host)
    host.add('vg', 'x', b'\0' * 4096, tags=['lvdiff_sha1:' + '0' * 40])
    with pytest.raises(LvdiffError, match=r'^volume vg/x already exists and was not made from this diff'):
        _restore.patch(lvm_of(host), full, 'vg', 'x', pool='pool', tags=['t1'])
    assert host.changes() == []


# --- the temporary volume -------------------------------------------------------------------------------------

def test_a_corrupt_diff_leaves_nothing(tmp_path, host):
    full, inc, src, base = chain(tmp_path, host)
    data = bytearray(open(full, 'rb').read())
    data[len(data) // 2] ^= 0xff
    open(full, 'wb').write(bytes(data))
    with pytest.raises(LvdiffError, match='^corrupt diff'):
        _restore.patch(lvm_of(host), full, 'vg', 'x', pool='pool')
    assert sorted(host.vgs['vg']) == ['pool']
    assert ['lvremove', '--yes', '--force', 'vg/x-lvpatch-tmp'] in host.calls


def test_a_leftover_temporary_volume_is_removed_first(tmp_path, host):
    full, inc, src, base = chain(tmp_path, host)
    host.add('vg', 'x-lvpatch-tmp', b'old')
    _restore.patch(lvm_of(host), full, 'vg', 'x', pool='pool')
    assert sorted(host.vgs['vg']) == ['pool', 'x'] and host.content('vg', 'x') == base
    assert host.changes()[0] == ['lvremove', '--yes', '--force', 'vg/x-lvpatch-tmp']


def test_a_failed_rename_removes_the_finished_temporary_volume(tmp_path, host):
    full, inc, src, base = chain(tmp_path, host)
    host.fail['lvrename'] = '  Logical volume "x" already exists in volume group "vg"'
    with pytest.raises(CommandError, match='lvrename failed'):
        _restore.patch(lvm_of(host), full, 'vg', 'x', pool='pool')
    assert sorted(host.vgs['vg']) == ['pool']


def test_a_signal_during_lvcreate_removes_what_it_made(tmp_path, host, monkeypatch):
    # The interrupted lvcreate still made its volume (as lvm2 does): the cleanup waits for children, then
    # finds and removes it.
    full, inc, src, base = chain(tmp_path, host)
    waited = []
    monkeypatch.setattr(_lvm, 'wait_for_children', lambda: waited.append(True))
    real_create = host._lvcreate

    def interrupted(args):
        real_create(args)
        raise Terminated('terminated by signal 15; cleaned up what was started')

    host._lvcreate = interrupted
    with pytest.raises(Terminated):
        _restore.patch(lvm_of(host), full, 'vg', 'x', pool='pool')
    assert sorted(host.vgs['vg']) == ['pool'] and waited == [True]


def test_a_worker_thread_cleans_up_without_reaping_other_threads_children(tmp_path, host, monkeypatch):
    full, inc, src, base = chain(tmp_path, host)
    waited = []
    monkeypatch.setattr(_lvm, 'wait_for_children', lambda: waited.append(True))
    host.fail['lvrename'] = 'no'
    errors = []

    def work():
        try:
            _restore.patch(lvm_of(host), full, 'vg', 'x', pool='pool')
        except LvdiffError as e:
            errors.append(e)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert len(errors) == 1 and sorted(host.vgs['vg']) == ['pool'] and waited == []


def test_scratch_volume_renames_only_on_success(tmp_path, host):
    lvm = lvm_of(host)
    with lvm.scratch_volume('vg', 'y') as tmp:
        assert tmp == 'y-lvpatch-tmp'
        lvm.create_thin('vg', 'pool', tmp, 4096)
    assert 'y' in host.vgs['vg'] and 'y-lvpatch-tmp' not in host.vgs['vg']
    with pytest.raises(ValueError):
        with lvm.scratch_volume('vg', 'z') as tmp:
            lvm.create_thin('vg', 'pool', tmp, 4096)
            raise ValueError('boom')
    assert sorted(host.vgs['vg']) == ['pool', 'y']


# --- finish -----------------------------------------------------------------------------------------------------

def lv(host, name):
    return lvm_of(host).lvs('vg')[name]


def test_finish_an_untagged_writable_active_replica_with_two_commands(host):
    host.add('vg', 'r', b'x' * 4096, tags=['lvdiff_origin:A'])
    host.calls = []
    assert _restore.finish(lvm_of(host), lv(host, 'r'), ['rep', 'of:V'], **_restore.REPLICA) is True
    assert host.changes() == [['lvchange', '--addtag', 'rep', '--addtag', 'of:V', '--permission', 'r',
                               '--setactivationskip', 'y', 'vg/r'],
                              ['lvchange', '--activate', 'n', 'vg/r']]
    assert host.state('vg', 'r') == (REPLICA_ATTR, ['lvdiff_origin:A', 'of:V', 'rep'])
    host.calls = []
    assert _restore.finish(lvm_of(host), lv(host, 'r'), ['rep', 'of:V'], **_restore.REPLICA) is False
    assert host.changes() == []


@pytest.mark.parametrize('ro,active,skip,tags,expected', [
    (True, False, False, ['rep'], [['lvchange', '--setactivationskip', 'y', 'vg/r']]),
    (True, True, True, ['rep'], [['lvchange', '--activate', 'n', 'vg/r']]),
    (False, False, True, ['rep'], [['lvchange', '--permission', 'r', 'vg/r']]),
    (True, False, True, [], [['lvchange', '--addtag', 'rep', 'vg/r']]),
])
def test_finish_changes_only_what_is_missing(host, ro, active, skip, tags, expected):
    host.add('vg', 'r', b'x' * 4096, tags=tags, ro=ro, active=active, skip=skip)
    host.calls = []
    assert _restore.finish(lvm_of(host), lv(host, 'r'), ['rep'], **_restore.REPLICA) is True
    assert host.changes() == expected
    assert host.state('vg', 'r') == (REPLICA_ATTR, ['rep'])


def test_finish_in_check_mode_says_and_changes_nothing(host):
    host.add('vg', 'r', b'x' * 4096)
    host.calls = []
    assert _restore.finish(lvm_of(host), lv(host, 'r'), ['rep'], check_mode=True, **_restore.REPLICA) is True
    assert host.changes() == [] and host.state('vg', 'r') == ('Vwi-a-tz--', [])


def test_finish_tags_only_leaves_the_state_alone(host):
    host.add('vg', 'r', b'x' * 4096)
    host.calls = []
    assert _restore.finish(lvm_of(host), lv(host, 'r'), ['rep']) is True
    assert host.changes() == [['lvchange', '--addtag', 'rep', 'vg/r']]


# --- the lock ---------------------------------------------------------------------------------------------------

def test_a_second_patch_of_the_same_name_is_refused(tmp_path, host):
    full, inc, src, base = chain(tmp_path, host)
    with _restore.lock('vg', 'x'):
        with pytest.raises(LvdiffError, match='^another lvpatch is restoring vg/x'):
            _restore.patch(lvm_of(host), full, 'vg', 'x', pool='pool')
    assert host.changes() == []

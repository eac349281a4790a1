"""lvpatch's cleanup when the device write fails (a full thin pool answers EIO/ENOSPC); its lock,
name lengths, check mode, results and the state of the volume it makes.

A real pool cannot be made to run out of space in the middle of a write on demand, so the
LVM calls are recorded by a fake (real LVM runs in the integration target lvpatch); the diff file,
its parsing, the writes, the lock files and flock are real (the "volume" is a file)."""

import errno
import fcntl
import hashlib
import os

import pytest

from ansible_collections.lvdiff.thin.plugins.module_utils import _lvm, _restore
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError
from ansible_collections.lvdiff.thin.plugins.modules import lvpatch

from ansible_collections.lvdiff.thin.tests.support.diffs import make_diff
from ansible_collections.lvdiff.thin.tests.support.volumes import VolumePair

CS = 4096


class FakeRunner:
    def run(self, argv, check=True):
        FakeLvm.calls.append(('run',) + tuple(argv))
        return 0, '', ''


class FakeLvm:
    """The LVM side of a target with a base volume 'base' in pool 'pool'; FakeLvm.others adds volumes
    {name: (lv_attr, lv_tags)}; FakeLvm.base_attr is the base's lv_attr."""

    calls = []
    others = {}
    base_attr = 'Vwi-a-tz--'

    def __init__(self, runner):
        self.runner = FakeRunner()

    def _lv(self, name, attr, size, tags=''):
        return _lvm.LV({'lv_name': name, 'vg_name': 'vg', 'pool_lv': 'pool' if attr[0] == 'V' else '',
                        'thin_id': '1', 'lv_uuid': 'U-' + name, 'lv_size': str(size), 'chunk_size': str(CS),
                        'lv_attr': attr, 'lv_tags': tags, 'lv_path': FakeLvm.device, 'transaction_id': '',
                        'data_percent': '1.0', 'discards': 'passdown', 'vg_extent_size': str(CS)})

    def lvs(self, vg):
        FakeLvm.calls.append(('lvs', vg))
        lvs = {'base': self._lv('base', FakeLvm.base_attr, FakeLvm.size),
               'pool': self._lv('pool', 'twi-aotz--', 1 << 40)}
        if ('snapshot', 'base', 'x-lvpatch-tmp') in FakeLvm.calls:
            lvs['x-lvpatch-tmp'] = self._lv('x-lvpatch-tmp', 'Vwi-a-tz--', FakeLvm.size)
        for name, (attr, tags) in FakeLvm.others.items():
            lvs[name] = self._lv(name, attr, FakeLvm.size, tags)
        return lvs

    def thin(self, vg, name, what='volume'):
        return self.lvs(vg)[name]

    def pool_of(self, lv):
        return self.lvs(lv.vg)['pool']

    def snapshot(self, vg, base, name, tags=()):
        FakeLvm.calls.append(('snapshot', base, name))
        FakeLvm.created_tags = list(tags)

    def remove(self, vg, name):
        FakeLvm.calls.append(('remove', name))

    def activate(self, lv):
        FakeLvm.calls.append(('activate', lv.name))

    def deactivate(self, lv):
        FakeLvm.calls.append(('deactivate', lv.name))

    scratch_volume = _lvm.Lvm.scratch_volume  # the real lifecycle, on the recorded calls
    change = _lvm.Lvm.change  # the real lvchange argv, recorded by FakeRunner
    _lvm = _lvm.Lvm._lvm

    def __getattr__(self, name):
        def record(*args, **kw):
            FakeLvm.calls.append((name,) + args + ((kw,) if kw else ()))
        return record


def changes():
    """The LVM calls that change something (everything but lvs)."""
    return [c for c in FakeLvm.calls if c[0] != 'lvs']


@pytest.fixture
def target(tmp_path, monkeypatch):
    base = {c: ('b', c) for c in range(32)}
    src = dict(base)
    src.update({c: ('s', c) for c in range(8, 24)})
    pair = VolumePair(tmp_path, CS, base, src, base_chunks=32, src_chunks=32)
    diff = str(tmp_path / 'd.lvdiff')
    make_diff(pair, diff)
    FakeLvm.calls = []
    FakeLvm.others = {}
    FakeLvm.base_attr = 'Vwi-a-tz--'
    FakeLvm.size = pair.base_size
    # the temporary volume's device, where _lvm looks for it
    monkeypatch.setattr(_lvm, 'DEV_DIR', str(tmp_path / 'dev'))
    FakeLvm.device = _lvm.device_path('vg', 'x' + _lvm.TMP_SUFFIX)
    os.makedirs(os.path.dirname(FakeLvm.device))
    with open(FakeLvm.device, 'wb') as f:
        f.write(open(pair.base, 'rb').read())
    monkeypatch.setattr(lvpatch, 'Lvm', FakeLvm)
    monkeypatch.setattr(_restore, 'LOCK_DIR', str(tmp_path / 'run-lvdiff.thin'), raising=False)
    return diff


def test_failed_write_removes_the_temporary_volume(target, run_module, monkeypatch):
    def full_pool(fd, buffers, offset):
        raise OSError(errno.EIO, 'Input/output error')

    monkeypatch.setattr(os, 'pwritev', full_pool)
    rc, res = run_module(lvpatch, {'src': target, 'vg': 'vg', 'base': 'base', 'name': 'x'})
    assert rc == 1
    assert res['msg'].startswith('writing %s failed: [Errno 5] Input/output error (the thin pool may be full)'
                                 % FakeLvm.device)
    assert ('remove', 'x-lvpatch-tmp') == FakeLvm.calls[-1]
    assert not any(c[0] in ('rename', 'tag') for c in FakeLvm.calls)


def test_success_renames_and_tags(target, run_module):
    rc, res = run_module(lvpatch, {'src': target, 'vg': 'vg', 'base': 'base', 'name': 'x'})
    assert rc == 0 and res['changed'] is True
    names = [c[0] for c in FakeLvm.calls]
    tag_call = [c for c in FakeLvm.calls if c[:3] == ('run', 'lvchange', '--addtag')][0]
    assert tag_call[-1] == 'vg/x-lvpatch-tmp' and tag_call[3] == 'lvdiff_sha1:' + res['sha1']
    assert FakeLvm.calls.index(tag_call) < names.index('rename') and 'remove' not in names
    assert ('lvs', 'vg') not in FakeLvm.calls[FakeLvm.calls.index(('snapshot', 'base', 'x-lvpatch-tmp')):], \
        'what lvcreate made is known without another lvs'


ARGS = {'vg': 'vg', 'base': 'base', 'name': 'x'}


def sha1_of(path):
    with open(path, 'rb') as f:
        return hashlib.sha1(f.read()).hexdigest()


# --- the lock ---------------------------------------------------------------------------------------------

def hold_lock(vg, name):
    """Lock vg/name as another run would (its own open file description); returns its fd."""
    with _restore.lock(vg, name):
        pass  # makes the directory and the file
    fd = os.open(os.path.join(_restore.LOCK_DIR, 'lvpatch@%s@%s.lock' % (vg, name)), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_a_second_run_on_the_same_name_is_refused_and_removes_nothing(target, run_module):
    # The first run's temporary volume exists: the second must neither remove it nor start its own.
    FakeLvm.others = {'x-lvpatch-tmp': ('Vwi-a-tz--', '')}
    fd = hold_lock('vg', 'x')
    try:
        rc, res = run_module(lvpatch, dict(ARGS, src=target))
    finally:
        os.close(fd)
    assert rc == 1
    assert res['msg'] == ('another lvpatch is restoring vg/x; wait for it to finish, then run again (lock file %s)'
                          % os.path.join(_restore.LOCK_DIR, 'lvpatch@vg@x.lock'))
    assert changes() == []


def test_runs_on_other_names_or_vgs_do_not_wait(target, run_module):
    fds = [hold_lock('vg', 'y'), hold_lock('vg2', 'x')]
    try:
        rc, res = run_module(lvpatch, dict(ARGS, src=target))
    finally:
        for fd in fds:
            os.close(fd)
    assert rc == 0 and res['changed'] is True


def test_the_lock_is_released_and_its_file_kept(target, run_module):
    rc, res = run_module(lvpatch, dict(ARGS, src=target))
    assert rc == 0
    path = os.path.join(_restore.LOCK_DIR, 'lvpatch@vg@x.lock')
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if still held
    finally:
        os.close(fd)
    assert oct(os.stat(_restore.LOCK_DIR).st_mode & 0o777) == '0o700'
    assert oct(os.stat(path).st_mode & 0o777) == '0o600'


def test_a_lock_directory_others_can_write_is_refused(target, run_module):
    os.mkdir(_restore.LOCK_DIR, 0o700)
    os.chmod(_restore.LOCK_DIR, 0o1777)
    rc, res = run_module(lvpatch, dict(ARGS, src=target))
    assert rc == 1
    assert res['msg'] == ("refusing the lock directory %s: owned by uid %d with mode 1777, it must be uid %d's "
                          'with no group or other access (0700); remove it'
                          % (_restore.LOCK_DIR, os.geteuid(), os.geteuid()))
    assert changes() == [] and os.listdir(_restore.LOCK_DIR) == []


def test_a_lock_directory_that_is_a_symlink_is_refused(target, run_module, tmp_path):
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir(mode=0o700)
    os.symlink(str(elsewhere), _restore.LOCK_DIR)
    rc, res = run_module(lvpatch, dict(ARGS, src=target))
    assert rc == 1
    assert res['msg'].startswith('refusing the lock directory %s: Not a directory' % _restore.LOCK_DIR)
    assert changes() == [] and os.listdir(str(elsewhere)) == []


def test_a_lock_file_that_is_a_symlink_is_not_followed(target, run_module, tmp_path):
    os.mkdir(_restore.LOCK_DIR, 0o700)
    victim = tmp_path / 'victim'
    os.symlink(str(victim), os.path.join(_restore.LOCK_DIR, 'lvpatch@vg@x.lock'))
    rc, res = run_module(lvpatch, dict(ARGS, src=target))
    assert rc == 1
    assert res['msg'].startswith('cannot open the lock file %s/lvpatch@vg@x.lock (a symlink is refused): '
                                 % _restore.LOCK_DIR)
    assert changes() == [] and not victim.exists()


# --- name lengths -----------------------------------------------------------------------------------------

def test_name_lengths_as_lvm2_measured():
    # lvm2 2.03.16 in the guest: vgdst/ + 119 characters is accepted, + 120 refused ("length 128 is not
    # supported"); vgdst-xa--a--...: a device-mapper name over 127 fails activation.
    assert _lvm.check_name_length('vgdst', 'b' * 119) == 'b' * 119
    with pytest.raises(LvdiffError, match=r'^volume name vgdst/b{120} is too long for LVM: VG/NAME may have at '
                                          r'most 125 characters \(it has 126\)'):
        _lvm.check_name_length('vgdst', 'b' * 120)
    with pytest.raises(LvdiffError, match=r'device-mapper name VG-NAME with each - doubled at most 127 '
                                          r'\(it has 158\)$'):
        _lvm.check_name_length('vgdst', 'x' + 'a-' * 50 + 'z')
    _lvm.check_name_length('vgdst', 'x' + 'a-' * 40)  # 127 exactly: lvm2 made and activated it


def test_a_name_too_long_for_the_temporary_volume_is_refused_before_anything(target, run_module):
    name = 'n' * (125 - len('vg/') - len('-lvpatch-tmp') + 1)  # fits LVM alone, not with the suffix
    for check_mode in (False, True):
        FakeLvm.calls = []
        rc, res = run_module(lvpatch, dict(ARGS, src=target, name=name), check_mode=check_mode)
        assert rc == 1
        assert res['msg'].startswith('temporary volume name vg/%s-lvpatch-tmp is too long for LVM' % name)
        assert FakeLvm.calls == []
    assert not os.path.exists(_restore.LOCK_DIR)


# --- check mode -------------------------------------------------------------------------------------------

def test_check_mode_does_not_activate_an_inactive_base(target, run_module):
    FakeLvm.base_attr = 'Vri---tz-k'  # read-only, inactive, activation skip: what lvpatch leaves
    rc, res = run_module(lvpatch, dict(ARGS, src=target), check_mode=True)
    assert rc == 0 and res['changed'] is True
    assert changes() == []
    assert res['base_checked'] is False and res['sha1'] == sha1_of(target)
    assert not os.path.exists(_restore.LOCK_DIR)


def test_check_mode_checks_an_active_base(target, run_module):
    rc, res = run_module(lvpatch, dict(ARGS, src=target), check_mode=True)
    assert rc == 0 and res['base_checked'] is True and changes() == []
    with open(FakeLvm.device, 'r+b') as f:  # the base's content no longer matches
        f.write(b'\xff' * 32 * 4096)
    rc, res = run_module(lvpatch, dict(ARGS, src=target), check_mode=True)
    assert rc == 1 and res['msg'].startswith('base check failed at byte ')
    assert changes() == []


# --- an existing volume -----------------------------------------------------------------------------------

def test_rerun_returns_the_sha1_and_the_volume_state(target, run_module):
    sha1 = sha1_of(target)
    FakeLvm.others = {'x': ('Vri---tz-k', 'lvdiff_origin:U-src,lvdiff_sha1:' + sha1)}
    rc, res = run_module(lvpatch, dict(ARGS, src=target))
    assert rc == 0 and res['changed'] is False
    assert res['sha1'] == sha1
    assert (res['permission'], res['active'], res['base_checked']) == ('r', False, False)
    assert res['checks'] >= 1 and res['data_chunks'] == 16
    assert changes() == []


def test_an_existing_volume_without_the_tag_is_named_so(target, run_module):
    FakeLvm.others = {'x': ('Vwi-a-tz--', 'other')}
    rc, res = run_module(lvpatch, dict(ARGS, src=target))
    assert rc == 1
    assert res['msg'] == ('volume vg/x already exists and was not made from this diff (it has no tag '
                          'lvdiff_sha1:); choose another name or remove it')
    FakeLvm.others = {'x': ('Vwi-a-tz--', 'lvdiff_sha1:' + '0' * 40)}
    rc, res = run_module(lvpatch, dict(ARGS, src=target))
    assert 'its tag is lvdiff_sha1:%s)' % ('0' * 40) in res['msg']
    assert changes() == []


# --- the state of the new volume --------------------------------------------------------------------------

def test_the_new_volume_is_read_only_and_inactive_by_default(target, run_module):
    rc, res = run_module(lvpatch, dict(ARGS, src=target))
    assert rc == 0
    assert (res['permission'], res['active'], res['base_checked']) == ('r', False, True)
    assert res['sha1'] == sha1_of(target) and res['checks'] >= 1
    calls = changes()
    finish = ('run', 'lvchange', '--addtag', 'lvdiff_sha1:' + res['sha1'], '--permission', 'r',
              '--setactivationskip', 'y', 'vg/x-lvpatch-tmp')  # one lvchange: the diff's tag and the state
    # Its final state before it gets its name: a failure in between leaves only the temporary volume.
    assert calls.index(finish) < calls.index(('deactivate', 'x-lvpatch-tmp')) < calls.index(
        ('rename', 'vg', 'x-lvpatch-tmp', 'x'))


def test_the_new_volume_can_be_left_writable_and_active(target, run_module):
    rc, res = run_module(lvpatch, dict(ARGS, src=target, permission='rw', activate=True))
    assert rc == 0 and (res['permission'], res['active']) == ('rw', True)
    assert [c for c in changes() if c[0] in ('run', 'deactivate')] == [
        ('run', 'lvchange', '--addtag', 'lvdiff_sha1:' + res['sha1'], 'vg/x-lvpatch-tmp')]


def test_a_diff_without_a_volume_name_asks_for_name(tmp_path, run_module):
    # A HyperLayer file of the Go tool may have an empty Name: line.
    diff = tmp_path / 'd.hl'
    diff.write_bytes(b'HYPERLAYER/1.0\nName: \nVolume size: 4096\nChunk size: 4096\nDelta blocks: 0\n'
                     b'VolumeUUID: U\nDetect level: 0\nBacking volumeUUID: B\n\n')
    rc, res = run_module(lvpatch, {'src': str(diff), 'vg': 'vg', 'base': 'base'})
    assert rc == 1 and res['msg'] == 'the diff records no volume name: give name, the name of the new volume'


# --- one open diff per run ----------------------------------------------------------------------------------

def count_opens(monkeypatch):
    opens = []
    real = _restore._diffio.open_diff

    def counting(path, *args):
        opens.append(path)
        return real(path, *args)

    monkeypatch.setattr(_restore._diffio, 'open_diff', counting)
    return opens


def test_a_restore_reads_the_diff_once(target, run_module, monkeypatch):
    # Its header parsed once (issue 9: headers were parsed up to three times), and the file whose header
    # and records were checked is the one applied, whatever replaces the path meanwhile.
    opens = count_opens(monkeypatch)
    rc, res = run_module(lvpatch, dict(ARGS, src=target))
    assert rc == 0 and res['changed'] is True
    assert opens == [target]


def test_a_rerun_reads_the_diff_once(target, run_module, monkeypatch):
    rc, res = run_module(lvpatch, dict(ARGS, src=target))
    assert rc == 0
    FakeLvm.others = {'x': ('Vri---tz-k', 'lvdiff_sha1:' + res['sha1'])}
    opens = count_opens(monkeypatch)
    rc, res2 = run_module(lvpatch, dict(ARGS, src=target))
    assert rc == 0 and res2['changed'] is False and res2['sha1'] == res['sha1']
    assert opens == [target]


# --- tags -----------------------------------------------------------------------------------------------------

def test_tags_go_with_ours_and_are_checked_first(target, run_module):
    rc, res = run_module(lvpatch, dict(ARGS, src=target, tags=['rep', 'of:V']))
    assert rc == 0
    # the tags known before the data are given by lvcreate; the diff's own once it is applied
    assert FakeLvm.created_tags == ['lvdiff_origin:SRC-UUID', 'rep', 'of:V']
    assert [c for c in FakeLvm.calls if c[:3] == ('run', 'lvchange', '--addtag')][0][3] == 'lvdiff_sha1:' + res['sha1']
    FakeLvm.calls = []
    rc, res = run_module(lvpatch, dict(ARGS, src=target, name='y', tags=['ok', '--all']))
    assert rc == 1 and res['msg'].startswith("'--all' is not a valid LVM tag") and changes() == []


def test_an_existing_volume_of_this_diff_gets_the_missing_tags(target, run_module):
    sha1 = sha1_of(target)
    FakeLvm.others = {'x': ('Vri---tz-k', 'lvdiff_sha1:%s,rep' % sha1)}
    rc, res = run_module(lvpatch, dict(ARGS, src=target, tags=['rep', 'of:V']))
    assert rc == 0 and res['changed'] is True
    assert changes() == [('run', 'lvchange', '--addtag', 'of:V', 'vg/x')]
    FakeLvm.calls = []
    FakeLvm.others = {'x': ('Vri---tz-k', 'lvdiff_sha1:%s,rep,of:V' % sha1)}
    rc, res = run_module(lvpatch, dict(ARGS, src=target, tags=['rep', 'of:V']))
    assert rc == 0 and res['changed'] is False and changes() == []

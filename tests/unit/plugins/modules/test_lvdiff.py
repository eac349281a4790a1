"""The lvdiff module on a pool built by the real thin_restore, read by the real thin_delta and
thin_dump; the thin volumes are sparse files with the pool's content. Only LVM itself (lvs,
lvchange) and the reservation of the metadata snapshot (dmsetup on a live pool) are faked:
they need a kernel pool, which the integration tests in the guest have."""

import contextlib
import fcntl
import json
import os
import stat

import pytest
import yaml
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lvdiff.thin.tests.support.module_args import patch_module_args

from ansible_collections.lvdiff.thin.plugins.module_utils import _backup, _diffio, _errors, _lvm, _progress
from ansible_collections.lvdiff.thin.plugins.modules import lvdiff, lvdiff_info

from ansible_collections.lvdiff.thin.tests.support.volumes import build, materialize
from ansible_collections.lvdiff.thin.tests.support.metadata import use_metadata_file

CS = 4096


class World:
    """The volumes of one generated pool: 'base' (thin id 1) and 'snap' (thin id 2), read-only."""

    def __init__(self, tmp_path):
        self.sc, self.meta = build(tmp_path, nr_chunks=600, layout='fragmented', change_fraction=0.1,
                                   discard_fraction=0.05, grow_chunks=20, seed=5)
        self.files = {}
        self.lvs = {}
        for name, dev, chunks in (('base', 1, self.sc.nr_chunks), ('snap', 2, self.sc.nr_chunks + self.sc.grow_chunks)):
            path = str(tmp_path / (name + '.img'))
            materialize(self.sc, dev, chunks, CS, path)
            self.lvs[name] = self._lv(name, 'Vri-a-tz--', chunks * CS, dev, path)
        self.lvs['pool'] = self._lv('pool', 'twi-aotz--', 1 << 30, '', '')
        self.out = tmp_path / 'out'
        self.out.mkdir()

    @staticmethod
    def _lv(name, attr, size, thin_id, path):
        return _lvm.LV({'lv_name': name, 'vg_name': 'vg', 'pool_lv': 'pool' if attr[0] == 'V' else '',
                        'thin_id': str(thin_id), 'lv_uuid': 'UUID-' + name, 'lv_size': str(size),
                        'chunk_size': str(CS), 'lv_attr': attr, 'lv_tags': '', 'lv_path': path,
                        'transaction_id': '2', 'data_percent': '1.0', 'discards': 'passdown',
                        'vg_extent_size': str(CS)})


@pytest.fixture
def world(tmp_path, monkeypatch):
    w = World(tmp_path)

    class FakeLvm:
        def __init__(self, runner):
            pass

        def lvs(self, vg):
            return w.lvs

        @contextlib.contextmanager
        def active(self, *lvs):
            yield

    monkeypatch.setattr(_backup, 'Lvm', FakeLvm)
    use_metadata_file(monkeypatch, w)
    return w


def args(world, name='d.lvdiff', **kw):
    return dict({'vg': 'vg', 'lv': 'snap', 'base': 'base', 'dest': str(world.out / name)}, **kw)


def documented(module):
    return set(yaml.safe_load(module.RETURN)) | {'changed', 'failed', 'msg', 'invocation'}


# --- F3: the diff is never readable by others, not even for a moment ---------------------------------


@pytest.fixture
def mode_watch(monkeypatch, world):
    """After every chmod, chown, rename, copystat... anywhere, record the mode of every path in the
    output directory: a file that is ever more than 0600 is caught at that moment."""
    seen = []

    def snapshot():
        for entry in os.listdir(world.out):
            try:
                st = os.lstat(os.path.join(world.out, entry))
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                seen.append((entry, stat.S_IMODE(st.st_mode), st.st_ino))

    for name in ('chmod', 'fchmod', 'chown', 'fchown', 'rename', 'replace', 'utime', 'close', 'fsync', 'link'):
        orig = getattr(os, name)

        def wrapped(*a, _orig=orig, **kw):
            try:
                return _orig(*a, **kw)
            finally:
                snapshot()
        monkeypatch.setattr(os, name, wrapped)
    old_umask = os.umask(0o022)
    yield seen
    os.umask(old_umask)


@pytest.mark.parametrize('fmt', ['lvdiff', 'hyperlayer'])
def test_new_diff_is_never_wider_than_0600(world, run_module, mode_watch, fmt):
    rc, res = run_module(lvdiff, args(world, format=fmt))
    assert rc == 0 and res['changed'] is True, res
    assert mode_watch, 'no file operation was seen'
    wide = [(e, oct(m)) for e, m, ino in mode_watch if m & 0o177]
    assert not wide, 'readable by others for a moment: %r' % wide
    assert stat.S_IMODE(os.stat(res['dest']).st_mode) == 0o600


def test_replaced_diff_is_never_wider_and_becomes_ours(world, run_module, mode_watch):
    dest = world.out / 'd.lvdiff'
    dest.write_bytes(b'an old file of someone else, readable by all')
    os.chmod(dest, 0o644)
    os.chown(dest, 65534, 65534)
    old = os.stat(dest).st_ino
    del mode_watch[:]
    rc, res = run_module(lvdiff, args(world))
    assert rc == 0 and res['changed'] is True, res
    wide = [(e, oct(m)) for e, m, ino in mode_watch if m & 0o177 and ino != old]
    assert not wide, 'readable by others for a moment: %r' % wide
    st = os.stat(dest)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
    with _diffio.open_diff(str(dest)) as reader:
        assert _diffio.verify(reader)['sha1'] == res['sha1']


# --- F10: temporary files of killed runs are swept, and only those -----------------------------------


def test_stale_temporary_files_are_swept_safely(world, run_module, tmp_path):
    out = world.out
    stale = out / '.d.lvdiff.abcd_123.part'
    stale.write_bytes(b'left by a SIGKILLed lvdiff')
    busy = out / '.d.lvdiff.busy1234.part'
    busy.write_bytes(b'being written by a running lvdiff')
    holder = os.open(str(busy), os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    victim = tmp_path / 'precious'
    victim.write_bytes(b'not ours to remove')
    link = out / '.d.lvdiff.link1234.part'
    link.symlink_to(victim)
    foreign = out / '.d.lvdiff.other123.part'
    foreign.write_bytes(b'another user\'s file')
    os.chown(foreign, 65534, 65534)
    fifo = out / '.d.lvdiff.fifo1234.part'
    os.mkfifo(fifo)
    unrelated = [out / '.d.lvdiff.abc.part', out / '.x.lvdiff.abcd1234.part', out / 'd.lvdiff.abcd1234.part',
                 out / '.d.lvdiff.abcd1234.part.sha1', out / '.d.lvdiff.ABCD1234.part']
    for p in unrelated:
        p.write_bytes(b'not a temporary file of d.lvdiff')
    try:
        rc, res = run_module(lvdiff, args(world), check_mode=True)
        assert rc == 0 and stale.exists(), 'check mode removes nothing'
        rc, res = run_module(lvdiff, args(world))
        assert rc == 0 and res['changed'] is True, res
        assert not stale.exists()
        assert busy.exists() and link.is_symlink() and victim.read_bytes() == b'not ours to remove'
        assert foreign.exists() and stat.S_ISFIFO(os.lstat(fifo).st_mode)
        assert all(p.exists() for p in unrelated)
        left = sorted(e for e in os.listdir(out) if e.startswith('.d.lvdiff.') and e.endswith('.part'))
        assert left == ['.d.lvdiff.ABCD1234.part', '.d.lvdiff.abc.part', '.d.lvdiff.busy1234.part',
                        '.d.lvdiff.fifo1234.part', '.d.lvdiff.link1234.part', '.d.lvdiff.other123.part']
    finally:
        os.close(holder)


def test_a_temporary_file_being_written_is_not_swept(world):
    dest = str(world.out / 'd.lvdiff')
    fd, tmp = _diffio.create_part(dest)
    try:
        assert _diffio.sweep(dest) == [] and os.path.exists(tmp)
        assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o600
    finally:
        os.close(fd)
    assert _diffio.sweep(dest) == [tmp] and not os.path.exists(tmp)


# --- results: what the docs say, nothing added by AnsibleModule's path info ----------------------------


def test_check_mode_size_is_the_estimate_not_the_old_files(world, run_module):
    rc, real = run_module(lvdiff, args(world, name='real.lvdiff'))
    dest = world.out / 'd.lvdiff'
    dest.write_bytes(b'12345')
    rc, res = run_module(lvdiff, args(world), check_mode=True)
    assert rc == 0 and res['changed'] is True
    assert res['size'] == real['size'] != 5
    assert not set(res) - documented(lvdiff), 'undocumented fields: %s' % sorted(set(res) - documented(lvdiff))


@pytest.mark.parametrize('fmt', ['lvdiff', 'hyperlayer'])
@pytest.mark.parametrize('base', [True, False])
def test_every_returned_field_is_documented(world, run_module, fmt, base):
    if fmt == 'hyperlayer' and not base:
        return
    a = args(world, format=fmt) if base else dict(args(world, format=fmt), base=None)
    for check_mode in (True, False, False):  # check mode, a real run, the unchanged rerun
        rc, res = run_module(lvdiff, a, check_mode=check_mode)
        assert rc == 0, res
        assert not set(res) - documented(lvdiff), sorted(set(res) - documented(lvdiff))
    for verify in (False, True):
        rc, info = run_module(lvdiff_info, {'src': a['dest'], 'verify': verify})
        assert rc == 0 and not set(info) - documented(lvdiff_info), sorted(set(info) - documented(lvdiff_info))


def test_run_module_returns_the_result_as_is(tmp_path, capsys):
    """lvpatch's result names the /dev symlink of the restored volume in path: add_path_info gave it
    state: link and the link's mode and size."""
    target = tmp_path / 'dm-3'
    target.write_bytes(b'x' * 100)
    link = tmp_path / 'restored'
    link.symlink_to(target)
    result = {'changed': True, 'lv': 'restored', 'path': str(link), 'size': 4096}
    with patch_module_args({}):
        module = AnsibleModule(argument_spec={})
        with pytest.raises(SystemExit):
            _errors.run_module(module, lambda m: dict(result))
    out = json.loads(capsys.readouterr().out)
    out.pop('invocation', None)
    assert out == result


# --- idempotence of HyperLayer files -------------------------------------------------------------------


@pytest.mark.parametrize('fmt', ['lvdiff', 'hyperlayer'])
def test_second_run_is_not_changed(world, run_module, fmt):
    a = args(world, format=fmt, checksum_level=3, pairs={'host': 'web1', 'note': 'a: "b"'})
    rc, first = run_module(lvdiff, a)
    assert rc == 0 and first['changed'] is True, first
    inode = os.stat(a['dest']).st_ino
    rc, second = run_module(lvdiff, a)
    assert rc == 0 and second['changed'] is False, second
    assert os.stat(a['dest']).st_ino == inode
    for k in ('size', 'sha1', 'checks'):
        assert second[k] == first[k], k
    assert second['data_chunks'] + second['discard_chunks'] == first['data_chunks'] + first['discard_chunks']
    # Anything the file records differs: rewritten.
    for change in ({'checksum_level': 2}, {'pairs': {'host': 'web2'}}):
        rc, res = run_module(lvdiff, dict(a, **change))
        assert rc == 0 and res['changed'] is True, change
        rc, res = run_module(lvdiff, a)
        assert res['changed'] is True


def test_hyperlayer_of_another_volume_is_rewritten(world, run_module):
    a = args(world, format='hyperlayer')
    rc, first = run_module(lvdiff, a)
    world.lvs['snap'].uuid = 'UUID-another'
    rc, res = run_module(lvdiff, a)
    assert rc == 0 and res['changed'] is True


def test_a_dest_we_did_not_write_is_replaced(world, run_module, tmp_path):
    """A valid diff of the same volumes at dest, but a symlink or another user's file: not ours to keep."""
    a = args(world)
    rc, first = run_module(lvdiff, a)
    dest = a['dest']
    os.chown(dest, 65534, 65534)
    rc, res = run_module(lvdiff, a)
    assert rc == 0 and res['changed'] is True and os.stat(dest).st_uid == os.geteuid()
    elsewhere = str(tmp_path / 'elsewhere.lvdiff')
    os.rename(dest, elsewhere)
    os.symlink(elsewhere, dest)
    rc, res = run_module(lvdiff, a)
    assert rc == 0 and res['changed'] is True and not os.path.islink(dest)
    assert os.path.exists(elsewhere)


# --- check mode counts what a real run writes -------------------------------------------------------------


@pytest.mark.parametrize('fmt', ['lvdiff', 'hyperlayer'])
@pytest.mark.parametrize('level', [0, 1, 2, 3])
def test_check_mode_counts_what_a_run_writes(world, run_module, fmt, level):
    a = args(world, format=fmt, checksum_level=level)
    rc, check = run_module(lvdiff, a, check_mode=True)
    rc, real = run_module(lvdiff, a)
    assert real['changed'] is True and check['changed'] is True
    for k in ('checks', 'data_chunks', 'discard_chunks'):
        assert check[k] == real[k], k
    with _diffio.open_diff(a['dest']) as reader:
        assert _diffio.verify(reader)['records']['check'] == real['checks']
    if fmt == 'lvdiff':
        assert check['size'] == real['size']


# --- errors say what failed ------------------------------------------------------------------------------


@pytest.mark.parametrize('which', ['snap', 'base'])
def test_unreadable_volume_is_named(world, run_module, which):
    os.unlink(world.lvs[which].path)
    rc, res = run_module(lvdiff, args(world))
    assert rc == 1
    what = 'volume' if which == 'snap' else 'base volume'
    assert res['msg'].startswith('cannot open %s vg/%s (%s) for reading: No such file' % (
        what, which, world.lvs[which].path)), res['msg']
    assert 'writing' not in res['msg']
    assert os.listdir(world.out) == [], 'nothing was created'


def test_an_unwritable_directory_is_named(world, run_module, monkeypatch):
    """Root writes any directory: the refusal is faked."""
    def refuse(*a, **kw):
        raise PermissionError(13, 'Permission denied')
    monkeypatch.setattr(_diffio.tempfile, 'mkstemp', refuse)
    rc, res = run_module(lvdiff, args(world))
    dest = args(world)['dest']
    assert rc == 1 and res['msg'] == 'cannot create a temporary file next to %s: Permission denied' % dest


# --- progress: <dest>.progress while the diff is written, gone afterwards ------------------------------


@pytest.fixture
def progress_watch(monkeypatch):
    """What every progress file held just after each time it was put in place (lvdiff renames its diff with
    os.rename: every os.replace is a progress file's)."""
    seen = []
    replace = os.replace

    def watched(src, dst, *a, **kw):
        replace(src, dst, *a, **kw)
        with open(dst) as f:
            seen.append((str(dst), stat.S_IMODE(os.stat(dst).st_mode), json.loads(f.read())))
    monkeypatch.setattr(os, 'replace', watched)
    monkeypatch.setattr(_progress.Progress.__init__, '__defaults__', (_progress.time.monotonic, _progress.time.time, 0))
    return seen


def test_progress_file_next_to_dest_while_writing_then_removed(world, run_module, progress_watch):
    rc, res = run_module(lvdiff, args(world, checksum_level=3))
    assert rc == 0 and res['changed'], res
    total = res['data_chunks'] * CS
    writing = [s for p, mode, s in progress_watch if s['phase'] == 'writing']
    assert {(p, mode) for p, mode, s in progress_watch} == {(res['dest'] + '.progress', 0o600)}
    assert any(0 < s['done'] < total for s in writing) and writing[-1]['done'] == total
    assert all(s['total'] == total for s in writing)
    assert [s['phase'] for p, mode, s in progress_watch][0] == 'checking base'
    assert sorted(os.listdir(world.out)) == ['d.lvdiff']


def test_progress_file_elsewhere_none_or_not_in_check_mode(world, run_module, progress_watch, tmp_path):
    rc, res = run_module(lvdiff, args(world, progress_file=str(tmp_path / 'p')))
    assert rc == 0 and {p for p, mode, s in progress_watch} == {str(tmp_path / 'p')}
    assert not os.path.exists(tmp_path / 'p')
    del progress_watch[:]
    for kw, check in (({'progress_file': '', 'force': True}, False), ({'force': True}, True)):
        rc, res = run_module(lvdiff, args(world, **kw), check_mode=check)
        assert rc == 0 and res['changed'], res
    assert progress_watch == [] and sorted(os.listdir(world.out)) == ['d.lvdiff']

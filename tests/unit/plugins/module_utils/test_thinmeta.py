"""Thin metadata parsing against the output of the real thin-provisioning-tools,
on metadata files built by thin_restore from generated pools with known truth.

Every test that runs a tool runs twice, once per tool generation (the thin_tools fixture,
tests/unit/conftest.py): the system's C++ 0.9.0 and Debian 13's Rust 1.1.x."""

import io
import os
import pathlib
import shutil
import signal
import stat
import subprocess
import tempfile

import pytest

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _thinmeta
from ansible_collections.lvdiff.thin.plugins.module_utils._command import Runner
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import (
    CommandError, LvdiffError, MetadataSnapshotHeldError)
from ansible_collections.lvdiff.thin.plugins.module_utils._codec import DiffHeader
from ansible_collections.lvdiff.thin.plugins.module_utils._plan import Plan

from ansible_collections.lvdiff.thin.tests.support.volumes import build, materialize, sha256_file

RUNNER = Runner()


def coalesce(runs):
    out = []
    for o, d, n in runs:
        if out and out[-1][0] + out[-1][1] == o:
            out[-1][1] += n
        else:
            out.append([o, n])
    return [tuple(r) for r in out]


SCENARIOS = [
    dict(nr_chunks=3000, layout='fragmented', change_fraction=0.05, discard_fraction=0.02, grow_chunks=50,
         data_block_size=128, fill_fraction=0.3, seed=1),
    dict(nr_chunks=3000, layout='contiguous', change_fraction=0.2, discard_fraction=0.05, grow_chunks=0,
         data_block_size=2048, seed=2),
    dict(nr_chunks=2000, layout='fragmented', change_fraction=0.5, discard_fraction=0.3, grow_chunks=400,
         data_block_size=2048, seed=3),
    dict(nr_chunks=5000, layout='contiguous', change_fraction=0.0, discard_fraction=0.0, grow_chunks=0,
         data_block_size=128, seed=4),
]


@pytest.fixture(scope='module', params=range(len(SCENARIOS)), ids=lambda i: '%s-%d' % (SCENARIOS[i]['layout'], i))
def pool(request, tmp_path_factory, thin_tools):
    return build(tmp_path_factory.mktemp('pool'), **SCENARIOS[request.param])


def test_thin_delta_runs_match_truth(pool):
    sc, meta = pool
    got = list(_thinmeta.thin_delta(RUNNER, meta, 1, 2, metadata_snap=False))
    assert got == sc.delta(1, 2)
    assert got, 'scenario produced no output at all'
    reverse = list(_thinmeta.thin_delta(RUNNER, meta, 2, 1, metadata_snap=False))
    assert reverse == sc.delta(2, 1)


@pytest.mark.parametrize('dev', [1, 2])
def test_thin_dump_mappings_match_truth(pool, dev):
    sc, meta = pool
    got = list(_thinmeta.thin_mappings(RUNNER, meta, dev, metadata_snap=False))
    assert got == coalesce(sc.mappings(dev))
    assert sum(n for dummy, n in got) == sc.mapped_chunks(dev)


@pytest.mark.parametrize('fmt', ['lvdiff', 'hyperlayer'])
def test_real_delta_to_diff_to_restore(pool, tmp_path, fmt):
    """Real thin_delta output drives a diff that turns the base into the snapshot, byte for byte."""
    sc, meta = pool
    cs = 4096  # each pool chunk stands for 4 KiB of file: the logic does not depend on the scale
    base_chunks, src_chunks = sc.nr_chunks, sc.nr_chunks + sc.grow_chunks
    base, src, target, diff = (str(tmp_path / n) for n in ('base', 'src', 'target', 'diff'))
    materialize(sc, 1, base_chunks, cs, base)
    materialize(sc, 2, src_chunks, cs, src)
    plan = Plan(cs, src_chunks * cs, base_chunks * cs).add_delta(
        _thinmeta.thin_delta(RUNNER, meta, 1, 2, metadata_snap=False))
    header = DiffHeader(volume={'name': 's', 'uuid': 'S', 'thin_id': 2, 'size': src_chunks * cs},
                        base={'name': 'b', 'uuid': 'B', 'thin_id': 1, 'size': base_chunks * cs},
                        chunk_size=cs, checksum_level=3)
    fds = [os.open(p, os.O_RDONLY) for p in (src, base)]
    with open(diff, 'wb') as out:
        _diffio.write_diff(out.fileno(), header, plan, fds[0], fds[1], fmt)
    subprocess.run(['cp', '--sparse=always', base, target], check=True)
    tfd = os.open(target, os.O_RDWR)
    _diffio.apply_file(diff, tfd, target_chunk_size=cs)
    for fd in fds + [tfd]:
        os.close(fd)
    assert sha256_file(target) == sha256_file(src)


def test_real_dump_to_full_image(pool, tmp_path):
    sc, meta = pool
    cs = 4096
    n = sc.nr_chunks + sc.grow_chunks
    src, target, diff = (str(tmp_path / x) for x in ('src', 'target', 'diff'))
    materialize(sc, 2, n, cs, src)
    plan = Plan(cs, n * cs).add_mapped(_thinmeta.thin_mappings(RUNNER, meta, 2, metadata_snap=False))
    assert plan.data_chunks == sc.mapped_chunks(2)
    header = DiffHeader(volume={'name': 's', 'uuid': 'S', 'thin_id': 2, 'size': n * cs}, chunk_size=cs)
    sfd = os.open(src, os.O_RDONLY)
    with open(diff, 'wb') as out:
        _diffio.write_diff(out.fileno(), header, plan, sfd)
    os.close(sfd)
    open(target, 'wb').close()
    tfd = os.open(target, os.O_RDWR)
    _diffio.apply_file(diff, tfd)
    os.close(tfd)
    assert sha256_file(target) == sha256_file(src)


# --- output generations the installed 0.9.0 cannot print (Rust 1.x), as documented upstream --

def test_rust_differ_tag():
    xml = (b'<superblock uuid="" time="1" transaction="2" data_block_size="128" nr_data_blocks="0">'
           b'<diff left="1" right="2"><same begin="0" length="4"/><differ begin="4" length="2"/>'
           b'<left_only begin="9" length="1"/><right_only begin="12" length="3"/></diff></superblock>')
    runs = [r for batch in _thinmeta.delta_runs(io.BytesIO(xml)) for r in batch]
    assert runs == [('same', 0, 4), ('different', 4, 2), ('left_only', 9, 1), ('right_only', 12, 3)]


def test_rust_def_ref_dump():
    xml = (b'<superblock uuid="" time="1" transaction="1" data_block_size="128" nr_data_blocks="100">'
           b'<def name="shared1"><range_mapping origin_begin="10" data_begin="50" length="5" time="0"/>'
           b'<single_mapping origin_block="15" data_block="7" time="0"/></def>'
           b'<device dev_id="1" mapped_blocks="9" transaction="0" creation_time="0" snap_time="0">'
           b'<single_mapping origin_block="0" data_block="1" time="0"/><ref name="shared1"/>'
           b'<single_mapping origin_block="20" data_block="9" time="0"/></device>'
           b'<device dev_id="2" mapped_blocks="7" transaction="0" creation_time="0" snap_time="0">'
           b'<ref name="shared1"/><single_mapping origin_block="16" data_block="3" time="0"/></device>'
           b'</superblock>')
    one = [r for batch in _thinmeta.mapped_runs(io.BytesIO(xml), 1) for r in batch]
    two = [r for batch in _thinmeta.mapped_runs(io.BytesIO(xml), 2) for r in batch]
    assert one == [(0, 1), (10, 6), (20, 1)]
    assert two == [(10, 7)]


def test_real_shared_subtree_dump(tmp_path, thin_tools):
    """A whole-pool thin_dump of two devices that share a mapping subtree, as a snapshot and its origin do,
    parsed per device. Rust thin_restore keeps a <def> shared and Rust thin_dump prints it once with a
    <ref> in each device: the real form of what test_rust_def_ref_dump writes by hand. The C++ tools
    are given the same mappings written out in each device (their thin_restore has no <def>)."""
    shared = [(100 + 2 * i, 10 + 3 * i, 1) for i in range(600)]  # 600 single mappings: several btree leaves
    own = {1: ([(0, 1, 1)], [(2000, 3000, 10)]), 2: ([], [(5000, 4000, 1), (5001, 4001, 1)])}

    def rows(runs):
        return ''.join('<range_mapping origin_begin="%d" data_begin="%d" length="%d" time="0"/>\n' % r
                       if r[2] > 1 else '<single_mapping origin_block="%d" data_block="%d" time="0"/>\n' % r[:2]
                       for r in runs)

    use_def = thin_tools == '1.x'
    xml = ['<superblock uuid="" time="1" transaction="1" data_block_size="128" nr_data_blocks="5000">\n']
    if use_def:
        xml.append('<def name="shared">\n%s</def>\n' % rows(shared))
    for dev, (head, tail) in own.items():
        xml.append('<device dev_id="%d" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">\n' % dev)
        xml.append(rows(head) + ('<ref name="shared"/>\n' if use_def else rows(shared)) + rows(tail) + '</device>\n')
    xml.append('</superblock>\n')
    (tmp_path / 'pool.xml').write_text(''.join(xml))
    meta = tmp_path / 'meta.bin'
    with open(meta, 'wb') as f:
        f.truncate(8 << 20)
    subprocess.run(['thin_restore', '-i', str(tmp_path / 'pool.xml'), '-o', str(meta)], check=True)
    whole = subprocess.run(['thin_dump', str(meta)], stdout=subprocess.PIPE, check=True).stdout
    assert (b'<ref name=' in whole) == use_def  # the Rust dump really shares the subtree
    for dev, (head, tail) in own.items():
        got = [r for batch in _thinmeta.mapped_runs(io.BytesIO(whole), dev) for r in batch]
        assert got == coalesce(head + shared + tail)
        assert got == list(_thinmeta.thin_mappings(RUNNER, str(meta), dev, metadata_snap=False))


@pytest.mark.parametrize('xml,match', [
    (b'<superblock><diff><same begin="0" length="1"/>', 'truncated or malformed'),
    (b'<superblock></superblock>', 'no <diff>'),
    (b'<superblock><diff><range begin="0" data_begin="1" length="2"/></diff></superblock>', 'verbose'),
    (b'', 'truncated or malformed'),
])
def test_bad_delta_output(xml, match):
    with pytest.raises(LvdiffError, match=match):
        list(_thinmeta.delta_runs(io.BytesIO(xml)))


def test_missing_device_in_dump(pool):
    sc, meta = pool
    with pytest.raises(LvdiffError, match='no device 7'):
        list(_thinmeta.thin_mappings(RUNNER, meta, 7, metadata_snap=False))


def test_tool_failure_carries_stderr(tmp_path, thin_tools):
    with pytest.raises(CommandError) as info:
        list(_thinmeta.thin_delta(RUNNER, str(tmp_path / 'nonexistent'), 1, 2, metadata_snap=False))
    assert 'thin_delta' in str(info.value) and info.value.details['rc'] != 0
    assert info.value.details['stderr']


def test_missing_tool_named_with_its_package():
    with pytest.raises(CommandError, match='thin_nonesuch not found.*'):
        Runner().run(['thin_nonesuch'])
    with pytest.raises(CommandError, match='thin_delta not found.*install thin-provisioning-tools'):
        _which_with_path('/nonexistent', 'thin_delta')


def _which_with_path(path, name):
    old = os.environ['PATH']
    os.environ['PATH'] = path
    try:
        return Runner().which(name)
    finally:
        os.environ['PATH'] = old


def test_reading_stops_early_kills_the_tool(pool):
    sc, meta = pool
    gen = _thinmeta.thin_delta(RUNNER, meta, 1, 2, metadata_snap=False)
    next(gen)
    gen.close()  # must not hang nor raise


# --- versions ---------------------------------------------------------------------------------

def test_real_tools_version_is_accepted(thin_tools):
    """Both generations' own --version output parses and passes the floor."""
    version = _thinmeta.tools_version(RUNNER)
    assert version[:2] == {'0.9': (0, 9), '1.x': (1, 1)}[thin_tools]


@pytest.mark.parametrize('text,ok', [
    ('0.9.0', True), ('0.7.4', True), ('0.7.6', True), ('thin_delta 1.0.6', True), ('1.1.0', True),
    ('0.7.5', False), ('0.7.3', False), ('0.6.1', False), ('0.4.1', False),
    ('1.0.0', False), ('1.0.4', False), ('1.0.5', False),
])
def test_version_floor(text, ok):
    version = _thinmeta.parse_version(text)
    if ok:
        assert _thinmeta.check_tools_version(version) == version
    else:
        with pytest.raises(LvdiffError, match='is not safe to use'):
            _thinmeta.check_tools_version(version)


def test_installed_tools_accepted():
    assert _thinmeta.tools_version(RUNNER) >= (0, 7, 4)


def test_unreadable_version():
    with pytest.raises(CommandError, match='cannot read'):
        _thinmeta.parse_version('thin_delta: unknown option')


def test_dm_names_double_hyphens():
    assert _thinmeta.dm_name('vg-data', 'my-pool') == 'vg--data-my--pool'


# --- the metadata snapshot: dmsetup cannot run on this kernel (no device-mapper), so its
# --- answers are scripted here; the real thing is exercised in the guest integration tests.

class ScriptedDmsetup(Runner):
    def __init__(self, held='-', reserve_rc=0, held_after_failed_reserve='-'):
        super().__init__()
        self.calls = []
        self.held = held
        self.reserve_rc = reserve_rc
        self.held_after = held_after_failed_reserve

    def run(self, argv, check=True, data=None):
        self.calls.append(' '.join(argv[2:]))
        if argv[1] == 'status':
            status = '0 409600 thin-pool 3 11/1024 9/3200 %s rw discard_passdown queue_if_no_space - 1024\n'
            return 0, status % self.held, ''
        if argv[-1] == 'reserve_metadata_snap':
            if self.reserve_rc:
                self.held = self.held_after
                return self.reserve_rc, '', 'device-mapper: message ioctl failed: Device or resource busy'
            self.held = '27'
            return 0, '', ''
        if argv[-1] == 'release_metadata_snap':
            self.held = '-'
            return 0, '', ''
        raise AssertionError(argv)


def snap(runner, tmp_path):
    return _thinmeta.MetadataSnapshot(runner, 'vg-x', 'pool', lock_dir=str(tmp_path), lock_timeout=1)


def test_reserve_and_release(tmp_path):
    r = ScriptedDmsetup()
    with snap(r, tmp_path) as s:
        assert s.tmeta == '/dev/mapper/vg--x-pool_tmeta'
        assert r.held == '27'
    assert r.calls == ['vg--x-pool-tpool', 'vg--x-pool-tpool 0 reserve_metadata_snap',
                       'vg--x-pool-tpool 0 release_metadata_snap']


def test_held_by_someone_else_is_left_alone(tmp_path):
    r = ScriptedDmsetup(held='513')
    with pytest.raises(MetadataSnapshotHeldError, match='root 513.*left alone'):
        with snap(r, tmp_path):
            pass
    assert not any('release' in c or 'reserve' in c for c in r.calls)
    assert r.held == '513'


def test_reserve_race_reported(tmp_path):
    r = ScriptedDmsetup(reserve_rc=1, held_after_failed_reserve='99')
    with pytest.raises(MetadataSnapshotHeldError, match='same moment'):
        with snap(r, tmp_path):
            pass
    assert r.held == '99' and not any('release' in c for c in r.calls)


def test_released_on_error(tmp_path):
    r = ScriptedDmsetup()
    with pytest.raises(ZeroDivisionError):
        with snap(r, tmp_path):
            1 / 0
    assert r.held == '-' and r.calls[-1].endswith('release_metadata_snap')


def test_released_on_sigterm(tmp_path):
    r = ScriptedDmsetup()
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(LvdiffError, match='terminated by signal 15'):
        with snap(r, tmp_path):
            os.kill(os.getpid(), signal.SIGTERM)  # the handler raises in this thread
            raise AssertionError('SIGTERM did not interrupt the block')
    assert r.held == '-'
    assert signal.getsignal(signal.SIGTERM) == before


class SignalDuringReserve(ScriptedDmsetup):
    """SIGTERM arrives while `dmsetup message ... reserve_metadata_snap` runs; dmsetup still
    reserves (it is a process of its own), as the real one would."""

    def run(self, argv, check=True, data=None):
        if argv[-1] == 'reserve_metadata_snap':
            self.calls.append(' '.join(argv[2:]))
            self.held = '27'
            os.kill(os.getpid(), signal.SIGTERM)
            raise AssertionError('SIGTERM did not interrupt the command')
        return super().run(argv, check, data)


def test_released_when_sigterm_interrupts_the_reserve(tmp_path):
    r = SignalDuringReserve()
    with pytest.raises(LvdiffError, match='terminated by signal 15'):
        with snap(r, tmp_path):
            raise AssertionError('the block must not run')
    assert r.held == '-' and r.calls[-1].endswith('release_metadata_snap')


def test_lock_serialises_users(tmp_path):
    r = ScriptedDmsetup()
    with snap(r, tmp_path):
        with pytest.raises(LvdiffError, match='timed out .* waiting for the metadata lock'):
            with snap(ScriptedDmsetup(), tmp_path):
                pass
    assert r.held == '-'


# --- the lock directory (issue 9, finding 4): other users cannot plant, redirect or hold locks ---

NOBODY = 65534
TPOOL_LOCK = 'vg--x-pool-tpool.lock'
needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('setpriv'),
                                reason='needs root and setpriv to act as another user')


def as_nobody(*argv):
    """Run a command as the unprivileged user nobody (what a local attacker can do)."""
    subprocess.run(['setpriv', '--reuid=%d' % NOBODY, '--regid=%d' % NOBODY, '--clear-groups'] + list(argv),
                   check=True)


@pytest.fixture
def open_tmp():
    """A directory that nobody can reach (pytest's tmp_path is root's alone)."""
    d = tempfile.mkdtemp(prefix='lvdiff-lock-test.')
    os.chmod(d, 0o755)
    yield pathlib.Path(d)
    shutil.rmtree(d)


@pytest.fixture
def shared(open_tmp):
    """A world-writable sticky directory like /run/lock or /tmp, and an 'outside' that must stay empty."""
    d = open_tmp / 'shared'
    d.mkdir()
    os.chmod(d, 0o1777)
    outside = open_tmp / 'outside'
    outside.mkdir()
    return d, outside


def refused(runner, lock_dir, match):
    with pytest.raises(LvdiffError, match=match):
        with _thinmeta.MetadataSnapshot(runner, 'vg-x', 'pool', lock_dir=str(lock_dir), lock_timeout=1):
            raise AssertionError('the block must not run')
    assert runner.calls == []  # refused before dmsetup ran


def test_default_lock_dir_is_not_world_writable():
    assert _thinmeta.MetadataSnapshot.LOCK_DIR == '/run/lvdiff.thin'


def test_lock_dir_made_private(tmp_path):
    old = os.umask(0)
    try:
        with snap(ScriptedDmsetup(), tmp_path / 'locks'):
            pass
    finally:
        os.umask(old)
    st, lock = os.lstat(tmp_path / 'locks'), os.lstat(tmp_path / 'locks' / TPOOL_LOCK)
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o700, os.geteuid())
    assert stat.S_ISREG(lock.st_mode) and stat.S_IMODE(lock.st_mode) == 0o600


@needs_root
def test_lock_dir_planted_by_another_user_is_refused(shared):
    d, outside = shared
    as_nobody('mkdir', '-m', '0777', str(d / 'lvdiff.thin'))
    refused(ScriptedDmsetup(), d / 'lvdiff.thin', r'owned by uid 65534 with mode 777.*remove it')
    as_nobody('chmod', '0700', str(d / 'lvdiff.thin'))  # even a private one: they could hold the lock
    refused(ScriptedDmsetup(), d / 'lvdiff.thin', 'owned by uid 65534 with mode 700')
    assert os.listdir(d / 'lvdiff.thin') == []


@needs_root
def test_lock_dir_symlink_is_refused(shared):
    d, outside = shared
    as_nobody('ln', '-s', str(outside), str(d / 'lvdiff.thin'))
    refused(ScriptedDmsetup(), d / 'lvdiff.thin', 'a symlink or not a directory is refused')
    assert os.listdir(outside) == []


@needs_root
def test_lock_dir_that_is_a_file_is_refused(shared):
    d, outside = shared
    as_nobody('touch', str(d / 'lvdiff.thin'))
    refused(ScriptedDmsetup(), d / 'lvdiff.thin', 'Not a directory')


def test_lock_dir_open_to_others_is_refused(tmp_path):
    os.mkdir(tmp_path / 'locks', 0o755)
    os.chmod(tmp_path / 'locks', 0o755)
    refused(ScriptedDmsetup(), tmp_path / 'locks', 'mode 755.*no group or other access')


@needs_root
@pytest.mark.parametrize('plant', ['symlink', 'foreign', 'fifo', 'hardlink'])
def test_planted_lock_file_is_refused(tmp_path, plant):
    """Our directory with a lock that someone else made (e.g. while it was not yet private)."""
    locks, outside = tmp_path / 'locks', tmp_path / 'outside'
    locks.mkdir(mode=0o700)
    outside.mkdir()
    lock = locks / TPOOL_LOCK
    if plant == 'symlink':
        os.symlink(outside / 'created', lock)
        match = 'a symlink is refused'
    elif plant == 'foreign':
        lock.touch()
        os.chown(lock, NOBODY, NOBODY)
        match = 'not a regular file of uid 0.*uid 65534'
    elif plant == 'fifo':
        os.mkfifo(lock)
        match = 'not a regular file'
    else:
        (outside / 'precious').write_text('x')
        os.link(outside / 'precious', lock)
        match = '2 links'
    refused(ScriptedDmsetup(), locks, match)
    assert sorted(os.listdir(outside)) == (['precious'] if plant == 'hardlink' else [])


@needs_root
def test_an_unprivileged_user_gets_a_directory_of_its_own(open_tmp):
    """Run as nobody (a forked child): root's directory is refused, a fresh one is made nobody's."""
    tmp_path = open_tmp
    os.chmod(tmp_path, 0o777)
    (tmp_path / 'roots').mkdir(mode=0o700)
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if both behave
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                with snap(ScriptedDmsetup(), tmp_path / 'roots'):
                    pass
            except LvdiffError as e:
                if 'owned by uid 0' in str(e):
                    with snap(ScriptedDmsetup(), tmp_path / 'mine'):
                        code = 0 if os.stat(tmp_path / 'mine').st_uid == NOBODY else 2
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0


def test_lock_failure_is_not_called_a_timeout(tmp_path, monkeypatch):
    """Only a lock held past the deadline is a timeout; any other flock error says what failed.
    (flock cannot be made to fail otherwise: mocked.)"""
    import errno

    def flock(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
    monkeypatch.setattr(_thinmeta.fcntl, 'flock', flock)
    with pytest.raises(LvdiffError, match='cannot lock .*%s: No locks available' % TPOOL_LOCK) as info:
        with snap(ScriptedDmsetup(), tmp_path):
            pass
    assert 'timed out' not in str(info.value)


@pytest.mark.parametrize('vg,pool', [('-vg', 'pool'), ('vg', '../pool'), ('vg', 'po/ol'), ('vg', 'pool\n')])
def test_bad_names_never_reach_the_lock_or_dmsetup(tmp_path, vg, pool):
    r = ScriptedDmsetup()
    with pytest.raises(LvdiffError, match='not a valid LVM name'):
        _thinmeta.MetadataSnapshot(r, vg, pool, lock_dir=str(tmp_path))
    assert r.calls == [] and os.listdir(tmp_path) == []


# --- hostile or broken tool output (issue 9, finding 9): the project's own error, naming the line ---

DELTA_HEAD = (b'<superblock uuid="" time="1" transaction="2" data_block_size="128" nr_data_blocks="0">\n'
              b'<diff left="1" right="2">\n')
DUMP_HEAD = (b'<superblock uuid="" time="1" transaction="1" data_block_size="128" nr_data_blocks="100">\n'
             b'<device dev_id="1" mapped_blocks="9" transaction="0" creation_time="0" snap_time="0">\n')
LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE superblock [\n<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">\n'
          + b''.join(b'<!ENTITY %s "%s">\n' % (bytes([c + 1]), b'&%s;' % bytes([c]) * 10) for c in range(97, 106))
          + b']>\n<superblock><diff>&j;</diff></superblock>\n')


def delta(xml):
    return [r for batch in _thinmeta.delta_runs(io.BytesIO(xml)) for r in batch]


def dump(xml, dev=1):
    return [r for batch in _thinmeta.mapped_runs(io.BytesIO(xml), dev) for r in batch]


@pytest.mark.parametrize('parse', [delta, dump], ids=['thin_delta', 'thin_dump'])
@pytest.mark.parametrize('xml', [
    LAUGHS,
    b'<!DOCTYPE superblock SYSTEM "file:///etc/passwd">\n<superblock/>',
    b'<!DOCTYPE superblock [<!ENTITY x SYSTEM "file:///etc/hostname">]>\n<superblock>&x;</superblock>',
    b'<!-- ' + b'x' * (600 << 10) + b' -->\n<!DOCTYPE superblock>\n<superblock/>',  # past the first block
], ids=['billion-laughs', 'external-dtd', 'external-entity', 'late-doctype'])
def test_doctype_refused(parse, xml):
    with pytest.raises(CommandError, match=r'printed a malformed element at line \d+: a DOCTYPE') as info:
        parse(xml)
    assert info.value.msg.startswith(parse.__name__.replace('delta', 'thin_delta').replace('dump', 'thin_dump'))


def test_billion_laughs_costs_nothing():
    """Refused at the DOCTYPE, before any entity is expanded (huge_tree let older libxml2
    expand a billion of them)."""
    import time
    start = time.process_time()
    for dummy in range(20):
        with pytest.raises(CommandError):
            delta(LAUGHS)
    assert time.process_time() - start < 1.0


@pytest.mark.parametrize('body,line,why', [
    (b'<same begin="0" length="4"/>\n<same begin="4"/>\n', 4, 'no length attribute'),
    (b'<same begin="0" length="4"/>\n<different begin="4" length="x"/>\n', 4, 'non-negative integers'),
    (b'<same begin="0" length="4"/>\n<different begin="4" length=""/>\n', 4, 'non-negative integers'),
    (b'<left_only begin="-4" length="4"/>\n', 3, 'ascend without overlap'),
    (b'<same begin="0" length="4"/>\n<right_only begin="2" length="4"/>\n', 4, 'ascend without overlap'),
    (b'<same begin="8" length="4"/>\n<same begin="0" length="4"/>\n', 4, 'ascend without overlap'),
    (b'<same begin="0" length="0"/>\n', 3, 'positive length'),
    (b'<same begin="0" length="-3"/>\n', 3, 'positive length'),
])
def test_malformed_delta_elements(body, line, why):
    with pytest.raises(CommandError, match=r'^thin_delta printed a malformed element at line %d: <\w+ .*%s'
                       % (line, why)):
        delta(DELTA_HEAD + body + b'</diff></superblock>')


@pytest.mark.parametrize('body,line,why', [
    (b'<single_mapping origin_block="0" data_block="1" time="0"/>\n<single_mapping data_block="2"/>\n', 4,
     'no origin_block attribute'),
    (b'<single_mapping origin_block="zero" data_block="1" time="0"/>\n', 3, 'non-negative integers'),
    (b'<single_mapping origin_block="-1" data_block="1" time="0"/>\n', 3, 'ascend without overlap'),
    (b'<single_mapping origin_block="0" data_block="1"/>\n<single_mapping origin_block="-5"/>\n', 4, 'ascend'),
    (b'<single_mapping origin_block="3"/>\n<single_mapping origin_block="3"/>\n', 4, 'ascend without overlap'),
    (b'<range_mapping origin_begin="3" data_begin="1" length="-2"/>\n', 3, 'positive length'),
    (b'<range_mapping origin_begin="3" data_begin="1"/>\n', 3, 'no length attribute'),
    (b'<range_mapping origin_begin="0" length="9"/>\n<single_mapping origin_block="4"/>\n', 4, 'ascend'),
    (b'<device dev_id="2">\n</device>\n', 3, 'a <device> inside a <device>'),
    (b'<def name="x">\n</def>\n', 3, 'a <def> inside a <device>'),
    (b'<ref name="nope"/>\n', 3, "undefined subtree 'nope'"),
])
def test_malformed_dump_elements(body, line, why):
    with pytest.raises(CommandError, match=r'^thin_dump printed a malformed element at line %d: <\w+.*%s'
                       % (line, why)):
        dump(DUMP_HEAD + body + b'</device></superblock>')


@pytest.mark.parametrize('xml,why', [
    (b'<superblock><def><single_mapping origin_block="1"/></def></superblock>', 'no name attribute'),
    (b'<superblock><def name="a"><ref name="a"/></def></superblock>', 'a <ref> inside a <def>'),
    (b'<superblock><def name="a"><def name="b"/></def></superblock>', 'a <def> inside a <device> or <def>'),
])
def test_malformed_dump_nesting(xml, why):
    with pytest.raises(CommandError, match='thin_dump printed a malformed element at line 1: .*%s' % why):
        dump(xml)


@pytest.mark.parametrize('shift', [-60, -36, -35, -20, -1, 0, 1, 30])
def test_error_line_is_exact_across_blocks(shift):
    """The bad element lies in the second block, the first, or is split by the boundary between."""
    good = b'    <single_mapping origin_block="%09d" data_block="0" time="0"/>\n'
    bad = b'<single_mapping origin_block="7"/>\n'  # 35 bytes
    start = (256 << 10) + shift  # where bad begins
    fixed = len(DUMP_HEAD) + len(b'<!---->\n')
    n = (start - fixed) // len(good % 0)
    pad = b'<!--' + b'x' * (start - fixed - n * len(good % 0)) + b'-->\n'
    head = b''.join([DUMP_HEAD, pad] + [good % i for i in range(n)])
    assert len(head) == start
    with pytest.raises(CommandError, match=r'at line %d: <single_mapping origin_block="7">' % (n + 4)):
        dump(head + bad + b'</device></superblock>')


def test_syntax_errors_name_the_tool_and_line():
    with pytest.raises(CommandError, match=r'^thin_delta printed malformed XML: .*line 4'):
        delta(DELTA_HEAD + b'<same begin="0" length="4"/>\n<same begin="4" length="1"</diff>')
    with pytest.raises(CommandError, match=r"^thin_dump printed malformed XML: Entity 'x' not defined.*line 3"):
        dump(DUMP_HEAD + b'&x;</device></superblock>')


def test_malformed_output_of_the_real_tool_path(tmp_path, monkeypatch):
    """Crafted output streamed through thin_delta's real path (a stand-in tool on PATH)."""
    fake = tmp_path / 'bin'
    fake.mkdir()
    (tmp_path / 'out.xml').write_bytes(DELTA_HEAD + b'<same begin="0" length="-1"/>\n</diff></superblock>\n')
    (fake / 'thin_delta').write_text('#!/bin/sh\ncat %s\n' % (tmp_path / 'out.xml'))
    os.chmod(fake / 'thin_delta', 0o755)
    monkeypatch.setenv('PATH', '%s:%s' % (fake, os.environ['PATH']))
    with pytest.raises(CommandError, match='^thin_delta printed a malformed element at line 3: .*positive length'):
        list(_thinmeta.thin_delta(Runner(), '/dev/null', 1, 2))

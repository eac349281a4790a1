"""Progress files: throttled, atomic, never through a symlink, removed at the end; and written mid-run by the
real data paths (a diff written, applied, a file transferred by the real receiver script)."""

import hashlib
import json
import os
import stat

import pytest

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _progress, _transfer
from ansible_collections.lvdiff.thin.plugins.module_utils._plan import Plan

from ansible_collections.lvdiff.thin.tests.support.diffs import make_diff
from ansible_collections.lvdiff.thin.tests.support.shell import ShellEndpoint
from ansible_collections.lvdiff.thin.tests.support.volumes import CS, VolumePair


class Clock:
    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now


class Counting(_progress.Progress):
    """A Progress that counts its file writes and keeps what the file held after each."""

    def __init__(self, *a, **kw):
        self.writes = []
        super().__init__(*a, **kw)

    def _write(self, data):
        super()._write(data)
        if os.path.isfile(self.path):
            with open(self.path) as f:
                self.writes.append(json.loads(f.read()))


def read(path):
    with open(path) as f:
        text = f.read()
    assert text.endswith('\n') and text.count('\n') == 1, text
    return json.loads(text)


def test_many_updates_within_an_interval_write_once(tmp_path):
    clock = Clock()
    p = Counting(str(tmp_path / 'x.progress'), 'writing', 1000, clock=clock, wall=lambda: 0, interval=1.0)
    assert not p.writes and not os.path.exists(p.path)  # nothing before data moves
    for i in range(50):
        p.add(10)
        clock.now += 0.01  # 50 updates in 0.5 s
    assert len(p.writes) == 1 and p.writes[0]['done'] == 10
    clock.now += 0.5  # one interval after the first write
    p.update(777)
    assert len(p.writes) == 2 and read(p.path)['done'] == 777
    p.update(778)
    assert len(p.writes) == 2  # throttled again
    p.flush()
    assert len(p.writes) == 3 and read(p.path)['done'] == 778


def test_content_fields(tmp_path):
    clock = Clock(50.0)
    p = _progress.Progress(str(tmp_path / 'x.progress'), 'writing', 1000, clock=clock,
                           wall=lambda: 86400 * 365 + 61.5, interval=1.0)
    clock.now = 52.0
    p.update(500)  # 500 bytes in 2 s
    assert read(p.path) == {'phase': 'writing', 'done': 500, 'total': 1000, 'percent': 50.0, 'rate': 250,
                            'eta_seconds': 2.0, 'updated': '1971-01-01T00:01:01Z', 'pid': os.getpid()}
    p.start('checking base', None)  # a phase whose total is unknown
    clock.now = 53.0
    p.add(4096)
    got = read(p.path)
    assert (got['phase'], got['done'], got['total'], got['percent'], got['eta_seconds'], got['rate']) == (
        'checking base', 4096, None, None, None, 4096)


def test_written_atomically_0600_and_removed_at_close(tmp_path):
    old = os.umask(0)
    try:
        with _progress.Progress(str(tmp_path / 'x.progress'), 'sending', 10, clock=Clock(), interval=0) as p:
            for n in range(1, 11):
                p.update(n)
                # only the file itself: every write went through a temporary file renamed onto it
                assert os.listdir(tmp_path) == ['x.progress']
                assert stat.S_IMODE(os.stat(p.path).st_mode) == 0o600
            assert read(p.path)['done'] == 10
    finally:
        os.umask(old)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('kind', ['symlink', 'directory', 'fifo'])
def test_a_path_that_is_not_a_regular_file_is_never_written_or_removed(tmp_path, kind):
    victim = tmp_path / 'victim'
    victim.write_text('precious')
    path = tmp_path / 'x.progress'
    if kind == 'symlink':
        path.symlink_to(victim)
    elif kind == 'directory':
        path.mkdir()
    else:
        os.mkfifo(path)
    p = _progress.Progress(str(path), 'writing', 100, clock=Clock(), interval=0)
    p.update(50)  # no failure: the run goes on without progress
    p.update(60)
    assert p.disabled
    p.close()
    assert victim.read_text() == 'precious'
    assert sorted(os.listdir(tmp_path)) == ['victim', 'x.progress']
    assert os.path.islink(path) == (kind == 'symlink')


def test_close_leaves_a_file_that_replaced_ours(tmp_path):
    path = tmp_path / 'x.progress'
    p = _progress.Progress(str(path), 'writing', 100, clock=Clock(), interval=0)
    p.update(1)
    path.rename(tmp_path / 'ours')  # still there: the new file cannot reuse its inode number
    path.write_text('another run\'s')
    p.close()
    assert path.read_text() == 'another run\'s'


def test_an_unwritable_place_does_not_fail_the_run(tmp_path):
    p = _progress.Progress(str(tmp_path / 'missing' / 'x.progress'), 'writing', 100, clock=Clock(), interval=0)
    p.update(1)
    p.update(2)
    p.close()
    assert p.disabled and os.listdir(tmp_path) == []


def test_none_is_a_no_op_with_the_same_methods():
    p = _progress.Progress(None, 'writing', 100)
    assert p is _progress.NO_PROGRESS
    with p:
        p.start('sending', 5)
        p.add(1)
        p.update(2)
        p.flush()
    assert _progress.path_of(None, '/d/x.lvdiff') == '/d/x.lvdiff.progress'
    assert _progress.path_of('/tmp/p', '/d/x') == '/tmp/p'
    assert _progress.path_of('', '/d/x') is None
    assert _progress.path_of(None) is None
    assert _progress.path_of('/tmp/p', '/d/x', check_mode=True) is None


# --- the real data paths ---------------------------------------------------------------------------


def mid_run(writes, phase, total):
    """The snapshots of phase taken while its bytes were moving, checked against total."""
    assert writes, 'no progress was written'
    during = [w for w in writes if w['phase'] == phase]
    assert during and all(w['total'] == total for w in during), writes
    assert any(0 < w['done'] < total for w in during), during
    assert [w['done'] for w in during] == sorted(w['done'] for w in during)
    return during


def test_write_diff_reports_progress_mid_run_and_writes_the_same_diff(tmp_path):
    # 40 changed chunks, every other one: 40 DATA records, a write per record (interval 0)
    base = {c: ('b', c) for c in range(100)}
    src = dict(base)
    src.update((c, ('s', c)) for c in range(0, 80, 2))
    pair = VolumePair(tmp_path, CS, base, src, 100, 100)
    plain = make_diff(pair, str(tmp_path / 'plain.lvdiff'), level=3)
    dest = str(tmp_path / 'd.lvdiff')
    header = pair.header(level=3)
    with Plan(pair.cs, pair.src_size, pair.base_size) as plan:
        plan.add_delta(pair.delta())
        src, base = os.open(pair.src, os.O_RDONLY), os.open(pair.base, os.O_RDONLY)
        try:
            with Counting(_progress.path_of(None, dest), 'writing', None, clock=Clock(), interval=0) as p:
                written = _diffio.write_diff_file(dest, header, plan, src, base, progress=p)
                assert os.path.exists(dest + '.progress')
        finally:
            os.close(src)
            os.close(base)
    assert written['sha1'] == plain['sha1'] and written['size'] == plain['size']
    checks = [w for w in p.writes if w['phase'] == 'checking base']
    assert checks and checks[-1]['done'] == 40 * CS  # level 3: every overwritten base chunk read
    during = mid_run(p.writes, 'writing', 40 * CS)
    assert during[-1]['done'] == 40 * CS
    assert sorted(os.listdir(tmp_path)) == ['base.img', 'd.lvdiff', 'plain.lvdiff', 'src.img']


def test_apply_reports_the_bytes_of_the_diff_read(tmp_path):
    pair = VolumePair(tmp_path, CS, {}, {c: ('s', c) for c in range(0, 60, 3)}, 60, 60)
    diff = str(tmp_path / 'full.lvdiff')
    made = make_diff(pair, diff, full=True)
    target = str(tmp_path / 'target.img')
    fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        with Counting(str(tmp_path / 'apply.progress'), 'applying', made['size'], clock=Clock(), interval=0) as p:
            with _diffio.open_diff(diff) as reader:
                _diffio.apply(reader, fd, progress=p)
    finally:
        os.close(fd)
    during = mid_run(p.writes, 'applying', made['size'])
    assert during[-1]['done'] > made['size'] - 200  # up to the trailer
    assert not os.path.exists(p.path)
    with open(pair.src, 'rb') as a, open(target, 'rb') as b:
        assert a.read() == b.read()


class Watched(ShellEndpoint):
    """The real receiver; every block the sender writes, the progress file is read from disk first."""

    def __init__(self, path, seen):
        super().__init__()
        self.path, self.seen = path, seen

    def session(self, cmd):
        s = super().session(cmd)
        write = s.write

        def watched(data):
            if os.path.exists(self.path):
                self.seen.append(read(self.path))
            write(data)
        s.write = watched
        return s


def test_transfer_reports_progress_mid_run_and_removes_it(tmp_path):
    data = os.urandom(4 * _transfer.BUFFER + 999)
    src = tmp_path / 'src.lvdiff'
    src.write_bytes(data)
    path = str(tmp_path / 'send.progress')
    seen = []
    with _progress.Progress(path, 'sending', None, interval=0) as p:
        r = _transfer.transfer(_transfer.LocalSource(str(src)), Watched(path, seen), str(tmp_path / 'in' / 'f'),
                               progress=p)
    assert r['bytes_sent'] == len(data)
    during = mid_run(seen, 'sending', len(data))
    assert [w['done'] for w in during[:4]] == [n * _transfer.BUFFER for n in range(1, 5)]
    assert not os.path.exists(path)
    assert hashlib.sha1((tmp_path / 'in' / 'f').read_bytes()).hexdigest() == r['sha1']

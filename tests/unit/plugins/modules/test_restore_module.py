"""restore: a point in time from a backup repository of real diff files (built in tmp_path as
_repository's tests build theirs) onto the scripted LVM host whose volumes are files, so the restored
volume is compared byte for byte with the source image of that time. Points, idempotence, refusals
before anything is created, check mode, a failure in the middle of the chain, a copied repository,
and the documented result."""

import errno
import hashlib
import itertools
import os
import shutil

import pytest
import yaml

from ansible_collections.lvdiff.thin.plugins.module_utils import _repository, _restore
from ansible_collections.lvdiff.thin.plugins.modules import restore

from ansible_collections.lvdiff.thin.tests.support.diffs import (
    flip_first_data_byte, lvdiff_bytes, lvdiff_records, make_diff)
from ansible_collections.lvdiff.thin.tests.support.lvmhost import lvm_host
from ansible_collections.lvdiff.thin.tests.support.repository import Snapshot, state
from ansible_collections.lvdiff.thin.tests.support.volumes import CS

VOL = ('web1', 'vg0', 'data')
# A full image, then an incremental that grows the volume, then one that shrinks it.
TIMES = {'A': '2026-12-01T03:00:00Z', 'B': '2026-12-02T03:00:00Z', 'C': '2026-12-03T03:00:00Z'}
BASES = {'A': None, 'B': 'A', 'C': 'B'}
CHUNKS = {'A': 8, 'B': 12, 'C': 10}
LABELS = {'A': 'first', 'B': 'before-upgrade', 'C': 'nightly'}
REPLICA_ATTR = 'Vri---tz-k'
WORK = itertools.count()


def put(tmp_path, letter, place=VOL, base_map=None, dest=None):
    """Write backup letter where the layout puts it (or at dest); (its path, the source image's bytes)."""
    root = str(tmp_path / 'repo')
    dest = dest or _repository.backup_path(root, place[0], place[1], place[2], TIMES[letter], BASES[letter] is None)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    base = BASES[letter]
    if base_map is None:
        base_map = state(base, CHUNKS[base]) if base else {}
    snap = Snapshot(tmp_path / 'work' / str(next(WORK)), 'UUID-' + letter, 'UUID-' + (base or '-'), TIMES[letter],
                    base_map, state(letter, CHUNKS[letter]), CHUNKS[letter], CHUNKS[base] if base else 0)
    pairs = dict(zip(_repository.PAIR_KEYS, place), label=LABELS[letter])
    make_diff(snap, dest, full=BASES[letter] is None, pairs=pairs)
    with open(snap.src, 'rb') as f:
        return dest, f.read()


def rel(letter, place=VOL):
    return '/'.join(place) + '/' + _repository.backup_name(TIMES[letter], BASES[letter] is None)


def sha1_file(path):
    with open(path, 'rb') as f:
        return hashlib.sha1(f.read()).hexdigest()


@pytest.fixture
def env(tmp_path, monkeypatch):
    """(host, repository root, {letter: source image bytes})."""
    monkeypatch.setattr(_restore, 'LOCK_DIR', str(tmp_path / 'run-lvdiff.thin'))
    host = lvm_host(tmp_path, monkeypatch)
    monkeypatch.setattr(restore, 'Runner', lambda module: host)
    images = dict((letter, put(tmp_path, letter)[1]) for letter in 'ABC')
    return host, str(tmp_path / 'repo'), images


def args(root, **kw):
    return dict({'repository': root, 'host': 'web1', 'vg_from': 'vg0', 'lv': 'data', 'vg': 'vg', 'pool': 'pool'}, **kw)


def path_of(root, letter):
    return os.path.join(root, rel(letter))


def without(result, *keys):
    return dict((k, v) for k, v in result.items() if k not in keys)


def created(host):
    return [c for c in host.calls if c[0] == 'lvcreate']


# --- restoring --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('point, letter', [
    ({}, 'C'), ({'point': 'latest'}, 'C'), ({'point': '2026-12-02T23:59:59Z'}, 'B'),
    ({'pair': {'label': 'before-upgrade'}}, 'B'), ({'point': '20261201T030000Z-full.lvdiff'}, 'A'),
    ({'point': 'web1/vg0/data/20261202T030000Z-incr.lvdiff'}, 'B')])
def test_a_point_restores_the_volume_as_it_was_then(env, run_module, point, letter):
    host, root, images = env
    rc, res = run_module(restore, args(root, name='x', tags=['restored'], **point))
    assert rc == 0 and res['changed'] is True, res
    assert host.content('vg', 'x') == images[letter]
    letters = 'ABC'[:'ABC'.index(letter) + 1]
    assert res['chain'] == [{'id': rel(x), 'created': TIMES[x], 'full': x == 'A',
                             'file_size': os.path.getsize(path_of(root, x))} for x in letters]
    assert res['bytes'] == sum(os.path.getsize(path_of(root, x)) for x in letters)
    sha1 = sha1_file(path_of(root, letter))
    assert (res['name'], res['path'], res['sha1'], res['origin_uuid'], res['volume_size']) == (
        'x', '/dev/vg/x', sha1, 'UUID-' + letter, CHUNKS[letter] * CS)
    assert (res['permission'], res['active']) == ('r', False)
    assert res['checks'] >= len(letters) - 1 and res['data_chunks'] > 0
    assert host.state('vg', 'x') == (REPLICA_ATTR, sorted(['restored', 'lvdiff_sha1:' + sha1,
                                                          'lvdiff_origin:UUID-' + letter]))
    # one temporary volume for the whole chain, sized as the full image, resized as each file says
    assert created(host) == [['lvcreate', '--thin', '--virtualsize', '%db' % (8 * CS), '--name', 'x-lvpatch-tmp',
                              '--addtag', 'lvdiff_origin:UUID-' + letter, '--addtag', 'restored', 'vg/pool']]
    resizes = [c[-2:] for c in host.calls if c[0] == 'lvresize']
    assert resizes == [['%db' % (CHUNKS[x] * CS), 'vg/x-lvpatch-tmp'] for x in letters[1:]]
    assert sorted(host.vgs['vg']) == ['pool', 'x']


def test_a_rerun_changes_nothing_and_adds_only_missing_tags(env, run_module):
    host, root, images = env
    rc, first = run_module(restore, args(root, permission='rw', activate=True))
    assert rc == 0 and first['name'] == 'data' and host.state('vg', 'data')[0] == 'Vwi-a-tz--'
    for check_mode in (True, False):
        host.calls = []
        rc, again = run_module(restore, args(root), check_mode=check_mode)
        assert rc == 0 and again['changed'] is False and host.changes() == []
        assert without(again, 'path', 'invocation') == dict(without(first, 'path', 'invocation'), changed=False)
    host.calls = []
    rc, again = run_module(restore, args(root, tags=['t1']))
    assert rc == 0 and again['changed'] is True
    assert host.changes() == [['lvchange', '--addtag', 't1', 'vg/data']]
    assert host.content('vg', 'data') == images['C']


def test_an_existing_volume_of_another_backup_is_refused(env, run_module):
    host, root, images = env
    rc, res = run_module(restore, args(root, name='x', point='2026-12-02T03:00:00Z'))
    b_sha1 = res['sha1']
    host.calls = []
    rc, res = run_module(restore, args(root, name='x'))
    assert rc == 1 and res['msg'] == (
        'volume vg/x already exists and was not made from %s (its tag is lvdiff_sha1:%s); choose another name or '
        'remove it' % (rel('C'), b_sha1))
    assert host.changes() == []
    c_sha1 = sha1_file(path_of(root, 'C'))
    host.add('vg', 'y', b'\0' * CS, tags=['lvdiff_sha1:' + c_sha1, 'lvdiff_origin:UUID-Q'])
    rc, res = run_module(restore, args(root, name='y'))
    assert rc == 1 and res['msg'] == (
        'volume vg/y already exists and was not made from %s (its tag is lvdiff_origin:UUID-Q, not '
        'lvdiff_origin:UUID-C); choose another name or remove it' % rel('C'))
    host.add('vg', 'z', b'\0' * CS)
    rc, res = run_module(restore, args(root, name='z'))
    assert rc == 1 and res['msg'] == ('volume vg/z already exists and was not made from %s (it has no tag '
                                      'lvdiff_sha1:); choose another name or remove it' % rel('C'))
    assert created(host) == [] and host.changes() == []


# --- refusals before anything is created -------------------------------------------------------------------------


def test_a_missing_middle_file_is_refused(env, run_module):
    host, root, images = env
    os.unlink(path_of(root, 'B'))
    rc, res = run_module(restore, args(root))
    assert rc == 1 and res['msg'] == ('the chain of %s breaks: its base (volume UUID-B) is not in the repository'
                                      % rel('C'))
    assert host.calls == []


def test_a_corrupt_file_is_refused(env, run_module):
    host, root, images = env
    index, pos, offset, length = flip_first_data_byte(path_of(root, 'B'))
    rc, res = run_module(restore, args(root))
    assert rc == 1 and res['msg'] == ('%s: corrupt diff: record %d at file offset %d: DATA record checksum mismatch '
                                      '(volume offset %d, length %d)' % (rel('B'), index, pos, offset, length))
    assert created(host) == [] and host.changes() == [] and sorted(host.vgs['vg']) == ['pool']


def test_a_truncated_newest_file_is_refused(env, run_module):
    host, root, images = env
    c_path = path_of(root, 'C')
    with open(c_path, 'rb') as f:
        records = len(lvdiff_records(f.read()))
    size = os.path.getsize(c_path) - 10
    os.truncate(c_path, size)
    rc, res = run_module(restore, args(root))
    assert rc == 1 and res['msg'] == ('%s: truncated diff: file ends at byte %d inside record %d (TRAILER)'
                                      % (rel('C'), size, records - 1))
    assert created(host) == [] and host.changes() == []


def test_a_foreign_file_in_the_chain_is_refused_and_named(env, run_module, tmp_path):
    host, root, images = env
    os.unlink(path_of(root, 'B'))
    put(tmp_path, 'B', place=('web3', 'vg0', 'data'), dest=path_of(root, 'B'))  # web3's B, renamed into place
    rc, res = run_module(restore, args(root))
    assert rc == 1 and res['msg'] == (
        'the chain of %s breaks: its base (volume UUID-B) is not in the repository; not taken from the repository: '
        '%s (its header pairs place it in web3/vg0/data)' % (rel('C'), rel('B')))
    assert host.calls == []


def test_no_backup_of_the_volume_is_refused(env, run_module):
    host, root, images = env
    rc, res = run_module(restore, args(root, lv='other'))
    assert rc == 1 and res['msg'] == 'no backup of web1/vg0/other in the repository %s' % root
    rc, res = run_module(restore, args(root, pair={'label': 'weekly'}))
    assert rc == 1 and res['msg'] == 'no backup has the header pair label=weekly'
    rc, res = run_module(restore, args(root, pair={'label': 'x', 'host': 'y'}))
    assert rc == 1 and res['msg'] == ('pair takes one KEY: VALUE, the header pair of the backup to restore; '
                                      'it has 2')
    assert host.calls == []


def test_a_pool_of_another_chunk_size_is_refused_before_the_chain_is_read(env, run_module, monkeypatch):
    host, root, images = env
    real_row = host._row
    monkeypatch.setattr(host, '_row', lambda vg, name: dict(real_row(vg, name), chunk_size=str(2 * CS))
                        if name == 'pool' else real_row(vg, name))
    flip_first_data_byte(path_of(root, 'A'))  # what reading the chain would find
    rc, res = run_module(restore, args(root))
    assert rc == 1 and res['msg'] == ('chunk size mismatch: the chain was made on a pool with 4 KiB chunks, thin '
                                      'pool vg/pool has 8 KiB chunks; restore into a pool with 4 KiB chunks')
    assert host.changes() == []


def test_a_pool_without_the_space_is_refused(env, run_module, monkeypatch):
    host, root, images = env
    real_row = host._row
    monkeypatch.setattr(host, '_row', lambda vg, name: dict(real_row(vg, name), data_percent='100.00')
                        if name == 'pool' else real_row(vg, name))
    needed = min(sum(os.path.getsize(path_of(root, x)) for x in 'ABC'), 12 * CS)  # one volume: at most its largest
    rc, res = run_module(restore, args(root))
    assert rc == 1 and res['msg'] == ('thin pool vg/pool has 0 bytes free, the chain may need up to %d; extend the '
                                      'pool' % needed)
    assert host.changes() == []


def test_a_restore_while_lvpatch_restores_the_same_name_is_refused_at_once(env, run_module):
    host, root, images = env
    with _restore.lock('vg', 'x'):
        rc, res = run_module(restore, args(root, name='x'))
    assert rc == 1 and res['msg'] == ('another lvpatch is restoring vg/x; wait for it to finish, then run again '
                                      '(lock file %s/lvpatch@vg@x.lock)' % _restore.LOCK_DIR)
    assert host.calls == []


# --- check mode ---------------------------------------------------------------------------------------------------

def test_check_mode_verifies_the_chain_and_creates_nothing(env, run_module):
    host, root, images = env
    rc, res = run_module(restore, args(root, point='2026-12-02T12:00:00Z'), check_mode=True)
    assert rc == 0 and res['changed'] is True
    assert [c['id'] for c in res['chain']] == [rel('A'), rel('B')]
    assert res['bytes'] == os.path.getsize(path_of(root, 'A')) + os.path.getsize(path_of(root, 'B'))
    assert res['sha1'] == sha1_file(path_of(root, 'B'))
    assert host.changes() == [] and sorted(host.vgs['vg']) == ['pool'] and not os.path.exists(_restore.LOCK_DIR)
    rc, done = run_module(restore, args(root, point='2026-12-02T12:00:00Z'))
    assert rc == 0 and without(done, 'invocation') == without(res, 'invocation')
    flip_first_data_byte(path_of(root, 'A'))
    rc, res = run_module(restore, args(root, name='y'), check_mode=True)
    assert rc == 1 and res['msg'].startswith('%s: corrupt diff: record ' % rel('A'))


# --- failures in the middle of the chain ----------------------------------------------------------------------------

def test_a_failed_write_in_the_second_file_leaves_no_temporary_volume(env, run_module, monkeypatch):
    host, root, images = env
    second = []  # B grows the volume: the lvresize comes between the first file and the second
    host.on_run = lambda argv: second.append(argv) if argv[0] == 'lvresize' else None
    real_pwritev = os.pwritev
    writes = []

    def failing(fd, buffers, offset):
        writes.append(offset)
        if second:
            raise OSError(errno.EIO, 'Input/output error')
        return real_pwritev(fd, buffers, offset)
    monkeypatch.setattr(os, 'pwritev', failing)
    rc, res = run_module(restore, args(root, name='x'))
    assert rc == 1 and res['msg'] == ('writing %s failed: [Errno 5] Input/output error (the thin pool may be full); '
                                      'nothing was kept' % host.device('vg', 'x-lvpatch-tmp'))
    assert len(writes) > 1 and sorted(host.vgs['vg']) == ['pool']
    assert host.changes()[-1] == ['lvremove', '--yes', '--force', 'vg/x-lvpatch-tmp']
    assert not any(c[0] == 'lvrename' for c in host.calls)


def test_a_file_rewritten_after_its_verification_is_refused_when_applied(env, run_module):
    host, root, images = env
    b_path = path_of(root, 'B')
    with open(b_path, 'rb') as f:
        good = f.read()
    records = lvdiff_records(good)
    data = [r for r in records if r[0] == ord('D')][0]
    data[5] = bytes([data[5][0] ^ 0x40]) + data[5][1:]
    forged = lvdiff_bytes(records)  # valid CRCs and trailer, same size: only the SHA-1 tells
    assert len(forged) == len(good)

    def rewrite(argv):
        if argv[0] == 'lvcreate':  # verified by now, not yet applied
            with open(b_path, 'r+b') as f:
                f.write(forged)
    host.on_run = rewrite
    rc, res = run_module(restore, args(root, name='x'))
    assert rc == 1 and res['msg'] == ('%s: changed since it was verified (SHA-1 %s then, %s now); nothing was kept'
                                      % (rel('B'), hashlib.sha1(good).hexdigest(), hashlib.sha1(forged).hexdigest()))
    assert sorted(host.vgs['vg']) == ['pool']


def test_the_base_checks_run_against_the_state_the_files_before_left(env, run_module, tmp_path):
    # B's header links it to A, but B was made against another content: its base checks fail on A's state.
    host, root, images = env
    os.unlink(path_of(root, 'B'))
    put(tmp_path, 'B', base_map=dict((c, ('other', c)) for c in range(8)))
    rc, res = run_module(restore, args(root, name='x'))
    assert rc == 1 and res['msg'].startswith('%s: base check failed at byte ' % rel('B')), res['msg']
    assert sorted(host.vgs['vg']) == ['pool'] and ['lvremove', '--yes', '--force', 'vg/x-lvpatch-tmp'] in host.calls


# --- a copied repository, the documented result ------------------------------------------------------------------

def test_a_copied_repository_restores_the_same(env, run_module, tmp_path):
    host, root, images = env
    copy = str(tmp_path / 'copy')
    shutil.copytree(root, copy)
    rc, here = run_module(restore, args(root, name='x', point='2026-12-02T03:00:00Z'))
    rc, there = run_module(restore, args(copy, name='y', point='2026-12-02T03:00:00Z'))
    assert rc == 0 and host.content('vg', 'y') == host.content('vg', 'x') == images['B']
    assert dict(without(there, 'invocation'), name='x', path='/dev/vg/x') == without(here, 'invocation')


def test_every_returned_field_is_documented(env, run_module):
    host, root, images = env
    doc = yaml.safe_load(restore.RETURN)
    for check_mode in (True, False, False):
        rc, res = run_module(restore, args(root), check_mode=check_mode)
        assert rc == 0 and set(res) - {'changed', 'invocation'} == set(doc)
        for item in res['chain']:
            assert set(item) == set(doc['chain']['contains'])

"""The backup repository (module_utils._repository) on real diff files: the layout, a scan that reads
headers only and follows no symlink, chains linked by header UUIDs, points resolved to chains, and a
chain verified whole before anything is applied."""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil

import pytest

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _repository
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError
from ansible_collections.lvdiff.thin.plugins.module_utils._repository import (
    backup_path, link, resolve, scan, verify_chain)

from ansible_collections.lvdiff.thin.tests.support.diffs import (
    flip_first_data_byte, lvdiff_bytes, lvdiff_records, make_diff)
from ansible_collections.lvdiff.thin.tests.support.repository import Snapshot, state
from ansible_collections.lvdiff.thin.tests.support.volumes import CS
from ansible_collections.lvdiff.thin.tests.support.imports import module_utils_loaded

VOL = ('web1', 'vg0', 'data')
OTHER_HOST = ('web2', 'vg0', 'data')  # the same VG and LV names on another host
# web1: full A -> incr B -> incr C, then full D -> incr E; web2: full F -> incr G
TIMES = {'A': '2026-12-01T03:00:00Z', 'B': '2026-12-02T03:00:00Z', 'C': '2026-12-03T03:00:00Z',
         'D': '2026-12-08T03:00:00Z', 'E': '2026-12-09T03:00:00Z',
         'F': '2026-12-01T04:00:00Z', 'G': '2026-12-02T04:00:00Z'}
BASES = {'A': None, 'B': 'A', 'C': 'B', 'D': None, 'E': 'D', 'F': None, 'G': 'F'}


WORK = itertools.count()


def put(tmp_path, place, letter, created=None, base=None, full=None, uuid=None, pairs=None, src_map=None,
        base_map=None, dest=None, fmt='lvdiff', **kw):
    """Write backup letter of place (host, vg, lv) where the layout puts it (or at dest); its
    volume UUID is UUID-<letter>, its base the backup base (default BASES)."""
    created = created or TIMES[letter]
    base = BASES.get(letter) if base is None else base
    full = base is None if full is None else full
    if pairs is None:
        pairs = dict(zip(_repository.PAIR_KEYS, place))
    dest = dest or backup_path(str(tmp_path / 'repo'), place[0], place[1], place[2], created, full)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if base_map is None:
        base_map = state(base) if base else {}
    snap = Snapshot(tmp_path / 'work' / str(next(WORK)), uuid or 'UUID-' + letter, 'UUID-' + (base or '-'),
                    created, base_map, src_map if src_map is not None else state(letter), **kw)
    make_diff(snap, dest, fmt=fmt, full=full, pairs=pairs)
    return dest


def rel(place, letter, kind=None):
    kind = kind or ('full' if BASES[letter] is None else 'incr')
    return '/'.join(place) + '/' + TIMES[letter].replace('-', '').replace(':', '') + '-%s.lvdiff' % kind


def ids(backups):
    return [b['id'] for b in backups]


def sha1_file(path):
    with open(path, 'rb') as f:
        return hashlib.sha1(f.read()).hexdigest()


@pytest.fixture
def repo(tmp_path):
    """The repository: both hosts' chains, partial transfers, a symlink, misplaced things."""
    for letter in 'ABCDE':
        put(tmp_path, VOL, letter, pairs=dict(zip(_repository.PAIR_KEYS, VOL), label='daily-' + letter))
    for letter in 'FG':
        put(tmp_path, OTHER_HOST, letter)
    root = tmp_path / 'repo'
    data = root / 'web1' / 'vg0' / 'data'
    for name in ('20261210T030000Z-incr.lvdiff.part', '20261210T030000Z-incr.lvdiff.part.sha1',
                 '.20261210T030000Z-incr.lvdiff.k3x_9a0b.part'):
        (data / name).write_bytes(b'partial')
    os.symlink(os.path.basename(rel(VOL, 'C')), str(data / '20261204T030000Z-incr.lvdiff'))
    os.symlink('data', str(root / 'web1' / 'vg0' / 'data2'))
    (data / 'notes.txt').write_text('restore with care')
    (data / 'old').mkdir()
    (root / 'README').write_text('backups')
    (root / '-bad').mkdir()
    shutil.copy(str(root / rel(OTHER_HOST, 'F')), str(data / '20261201T040000Z-full.lvdiff'))  # web2's file
    return str(root)


def expected_backup(root, place, letter, **pairs):
    path = os.path.join(root, rel(place, letter))
    st = os.stat(path)
    return {'id': rel(place, letter), 'path': path, 'host': place[0], 'vg': place[1], 'lv': place[2],
            'created': TIMES[letter], 'time': TIMES[letter], 'full': BASES[letter] is None, 'base': None,
            'volume_uuid': 'UUID-' + letter, 'base_uuid': BASES[letter] and 'UUID-' + BASES[letter],
            'volume_size': 8 * CS, 'chunk_size': CS, 'file_size': st.st_size, 'format': 'lvdiff',
            'pairs': dict(zip(_repository.PAIR_KEYS, place), **pairs), 'device': st.st_dev, 'inode': st.st_ino,
            'compression': 'none', 'encryption': 'none', 'key_id': None}


# --- the layout -------------------------------------------------------------------------------


def test_backup_path_lays_out_host_vg_lv_and_the_header_time():
    assert backup_path('/srv/b', 'web1.example.org', 'vg0', 'data_1+x', '2026-12-01T03:04:05Z', True) == \
        '/srv/b/web1.example.org/vg0/data_1+x/20261201T030405Z-full.lvdiff'
    assert backup_path('/srv/b', 'web1', 'vg0', 'data', '2026-12-01T03:04:05Z', False) == \
        '/srv/b/web1/vg0/data/20261201T030405Z-incr.lvdiff'


@pytest.mark.parametrize('host, vg, lv, level, bad', [
    ('..', 'vg0', 'data', 'host', '..'), ('web1', '-vg', 'data', 'VG', '-vg'), ('web1', 'vg0', 'a/b', 'LV', 'a/b'),
    ('web 1', 'vg0', 'data', 'host', 'web 1'), ('web1', '.', 'data', 'VG', '.'), ('web1', 'vg0', '', 'LV', ''),
    ('w\u00e9b', 'vg0', 'data', 'host', 'w\u00e9b'), ('web1', 'vg0', 'x' * 256, 'LV', 'x' * 256)])
def test_backup_path_refuses_names_outside_lvm_characters(host, vg, lv, level, bad):
    with pytest.raises(LvdiffError) as e:
        backup_path('/srv/b', host, vg, lv, '2026-12-01T03:04:05Z', True)
    assert str(e.value) == ('%s name %r is not allowed in a backup repository: use A-Z a-z 0-9 + _ . - (not - '
                            'first), not . or .., at most 255 characters' % (level, bad))


@pytest.mark.parametrize('created', ['2026-12-01 03:04:05Z', '2026-13-01T03:04:05Z', '2026-12-01T03:04:05',
                                     '20261201T030405Z', None])
def test_backup_path_refuses_a_time_not_iso(created):
    with pytest.raises(LvdiffError) as e:
        backup_path('/srv/b', 'web1', 'vg0', 'data', created, True)
    assert str(e.value) == 'created %r is not a time YYYY-mm-ddTHH:MM:SSZ' % (created,)


# --- scan -------------------------------------------------------------------------------------


def test_scan_finds_each_hosts_chains_apart_and_reports_the_rest(repo):
    found = scan(repo)
    assert sorted(found['volumes']) == [VOL, OTHER_HOST]
    assert ids(found['volumes'][VOL]) == [rel(VOL, x) for x in 'ABCDE']
    assert ids(found['volumes'][OTHER_HOST]) == [rel(OTHER_HOST, x) for x in 'FG']
    assert found['volumes'][VOL][1] == expected_backup(repo, VOL, 'B', label='daily-B')
    assert found['volumes'][OTHER_HOST][0] == expected_backup(repo, OTHER_HOST, 'F')
    assert found['partial'] == ['web1/vg0/data/.20261210T030000Z-incr.lvdiff.k3x_9a0b.part',
                                'web1/vg0/data/20261210T030000Z-incr.lvdiff.part',
                                'web1/vg0/data/20261210T030000Z-incr.lvdiff.part.sha1']
    assert found['misplaced'] == [
        ('-bad', 'not a host name'),
        ('README', 'not a directory (host directories belong here)'),
        ('web1/vg0/data/20261201T040000Z-full.lvdiff', 'its header pairs place it in web2/vg0/data'),
        ('web1/vg0/data/20261204T030000Z-incr.lvdiff', 'symlink'),
        ('web1/vg0/data/notes.txt', 'not a backup file name (<created as YYYYmmddTHHMMSSZ>-<full|incr>.lvdiff)'),
        ('web1/vg0/data/old', 'a directory among the backup files'),
        ('web1/vg0/data2', 'symlink')]
    assert found['unreadable'] == []


def test_scan_of_one_host_vg_lv_sees_only_it(repo):
    found = scan(repo, host='web2')
    assert list(found['volumes']) == [OTHER_HOST] and found['misplaced'] == [] and found['partial'] == []
    found = scan(repo, 'web1', 'vg0', 'data')
    assert list(found['volumes']) == [VOL] and len(found['partial']) == 3
    assert [m[0] for m in found['misplaced']] == [
        'web1/vg0/data/20261201T040000Z-full.lvdiff', 'web1/vg0/data/20261204T030000Z-incr.lvdiff',
        'web1/vg0/data/notes.txt', 'web1/vg0/data/old']
    assert scan(repo, host='web3') == {'volumes': {}, 'partial': [], 'misplaced': [], 'unreadable': []}
    assert scan(repo, 'web1', 'vg0', 'data2')['misplaced'] == [('web1/vg0/data2', 'symlink')]
    with pytest.raises(LvdiffError) as e:
        scan(repo, host='../web1')
    assert str(e.value).startswith("host name '../web1' is not allowed in a backup repository")


def test_scan_refuses_a_directory_larger_than_its_bound(repo, monkeypatch):
    monkeypatch.setattr(_repository, 'MAX_ENTRIES', 12)  # web1/vg0/data holds 12, the root 4
    assert len(scan(repo)['volumes']) == 2
    monkeypatch.setattr(_repository, 'MAX_ENTRIES', 11)
    with pytest.raises(LvdiffError) as e:
        scan(repo)
    assert str(e.value) == ('%s/web1/vg0/data holds more than 11 entries, more than a backup repository directory '
                            'may hold: nothing was scanned' % repo)
    monkeypatch.setattr(_repository, 'MAX_ENTRIES', 3)
    with pytest.raises(LvdiffError) as e:
        scan(repo)
    assert str(e.value) == ('%s holds more than 3 entries, more than a backup repository directory may hold: '
                            'nothing was scanned' % repo)


def test_scan_refuses_a_missing_root(tmp_path):
    with pytest.raises(LvdiffError) as e:
        scan(str(tmp_path / 'nowhere'))
    assert str(e.value) == 'cannot open the backup repository %s: No such file or directory' % (tmp_path / 'nowhere')


def test_scan_reports_files_whose_name_contradicts_their_header_or_that_are_no_diff(tmp_path):
    put(tmp_path, VOL, 'A')
    b = put(tmp_path, VOL, 'B')
    data = os.path.dirname(b)
    os.rename(b, os.path.join(data, '20261202T030000Z-full.lvdiff'))
    put(tmp_path, VOL, 'C', dest=os.path.join(data, '20261203T030001Z-incr.lvdiff'))
    put(tmp_path, VOL, 'D', created='2026-12-08T03:00:00', dest=os.path.join(data, '20261208T030000Z-full.lvdiff'))
    with open(os.path.join(data, '20261209T030000Z-incr.lvdiff'), 'wb') as f:
        f.write(b'GIF89a, not a diff')
    os.mkfifo(os.path.join(data, '20261210T030000Z-incr.lvdiff'))
    found = scan(str(tmp_path / 'repo'))
    assert ids(found['volumes'][VOL]) == [rel(VOL, 'A')]
    assert found['misplaced'] == [
        ('web1/vg0/data/20261202T030000Z-full.lvdiff', 'its name says full, its header is an incremental'),
        ('web1/vg0/data/20261203T030001Z-incr.lvdiff',
         'its name says created 20261203T030001Z, its header 2026-12-03T03:00:00Z'),
        ('web1/vg0/data/20261208T030000Z-full.lvdiff',
         "its header time '2026-12-08T03:00:00' is not YYYY-mm-ddTHH:MM:SSZ"),
        ('web1/vg0/data/20261210T030000Z-incr.lvdiff', 'not a regular file')]
    assert found['unreadable'] == [
        ('web1/vg0/data/20261209T030000Z-incr.lvdiff',
         "not a diff file: it starts with b'GIF89a, not a d', neither the lvdiff magic nor HYPERLAYER/1.0")]


def test_scan_reports_hostile_names_and_pairs_escaped_and_bounded(tmp_path):
    put(tmp_path, VOL, 'A', pairs={'backup_host': 'web1\nroot', 'backup_vg': 'vg0'})
    put(tmp_path, VOL, 'B', pairs={'note': 'x' * 70000})
    root = tmp_path / 'repo'
    (root / 'web1' / 'vg0' / 'data' / 'a\nb').write_text('')
    os.mkdir(os.path.join(str(root).encode(), b'web\xff'))
    found = scan(str(root))
    assert found['volumes'] == {}
    assert found['misplaced'] == [
        ('web1/vg0/data/20261201T030000Z-full.lvdiff', 'its header pairs place it in web1\\nroot/vg0/data'),
        ('web1/vg0/data/20261202T030000Z-incr.lvdiff',
         'its header pairs hold more than the 65536 characters a backup repository keeps'),
        ('web1/vg0/data/a\\nb', 'not a backup file name (<created as YYYYmmddTHHMMSSZ>-<full|incr>.lvdiff)'),
        ('web\\udcff', 'not a host name')]


def test_a_hyperlayer_backup_takes_its_time_from_its_name(tmp_path):
    put(tmp_path, VOL, 'A')
    put(tmp_path, VOL, 'B', fmt='hyperlayer')  # its header records no created time
    b = scan(str(tmp_path / 'repo'))['volumes'][VOL][1]
    assert (b['id'], b['created'], b['format'], b['base_uuid']) == (rel(VOL, 'B'), TIMES['B'], 'hyperlayer', 'UUID-A')


# --- link ---------------------------------------------------------------------------------------


def test_link_sets_each_base_from_header_uuids(repo):
    backups, orphans, duplicates = link(scan(repo)['volumes'][VOL])
    assert [(b['id'], b['base']) for b in backups] == [
        (rel(VOL, 'A'), None), (rel(VOL, 'B'), rel(VOL, 'A')), (rel(VOL, 'C'), rel(VOL, 'B')),
        (rel(VOL, 'D'), None), (rel(VOL, 'E'), rel(VOL, 'D'))]
    assert orphans == [] and duplicates == []
    assert [(b['id'], b['time'], b['full']) for b in backups][:2] == [
        (rel(VOL, 'A'), TIMES['A'], True), (rel(VOL, 'B'), TIMES['B'], False)]


def test_link_reports_an_orphan_with_a_base_that_is_no_id(repo):
    os.unlink(os.path.join(repo, rel(VOL, 'B')))
    backups, orphans, duplicates = link(scan(repo)['volumes'][VOL])
    assert orphans == [rel(VOL, 'C')]
    assert [b['base'] for b in backups if b['id'] == rel(VOL, 'C')] == ['volume UUID-B']


def test_link_keeps_the_newer_name_of_two_copies_of_one_diff(tmp_path):
    for letter in 'ABC':
        put(tmp_path, VOL, letter)
    again = put(tmp_path, VOL, 'C', created='2026-12-03T05:00:00Z')  # C made again from the same snapshot
    root = str(tmp_path / 'repo')
    backups, orphans, duplicates = link(scan(root)['volumes'][VOL])
    assert duplicates == [(rel(VOL, 'C'), 'web1/vg0/data/' + os.path.basename(again))]
    assert ids(backups) == [rel(VOL, 'A'), rel(VOL, 'B'), 'web1/vg0/data/20261203T050000Z-incr.lvdiff']
    assert [b['id'] for b in resolve(scan(root)['volumes'][VOL], os.path.basename(rel(VOL, 'C')))] == \
        [rel(VOL, 'A'), rel(VOL, 'B'), rel(VOL, 'C')]  # the duplicate itself still restores


def test_link_refuses_two_different_diffs_of_one_volume(tmp_path):
    for letter in 'ABC':
        put(tmp_path, VOL, letter)
    put(tmp_path, VOL, 'C', created='2026-12-03T05:00:00Z', src_map={0: 'other'})
    found = scan(str(tmp_path / 'repo'))['volumes'][VOL]
    sizes = [b['file_size'] for b in found[2:]]
    with pytest.raises(LvdiffError) as e:
        link(found)
    assert str(e.value) == (
        '%s and web1/vg0/data/20261203T050000Z-incr.lvdiff both hold volume UUID-C but are not copies of one '
        'diff (%d and %d bytes, bases UUID-B and UUID-B): keep the right one, remove the other'
        % (rel(VOL, 'C'), sizes[0], sizes[1]))


def test_link_refuses_bases_that_loop(tmp_path):
    put(tmp_path, VOL, 'B', uuid='UUID-X', base='Y')
    put(tmp_path, VOL, 'C', uuid='UUID-Y', base='X')
    with pytest.raises(LvdiffError) as e:
        link(scan(str(tmp_path / 'repo'))['volumes'][VOL])
    assert str(e.value) == 'the chain of %s loops: %s is its own ancestor' % (rel(VOL, 'B'), rel(VOL, 'B'))


# --- resolve ------------------------------------------------------------------------------------


@pytest.mark.parametrize('point, chain', [
    ('latest', 'DE'), ('2026-12-02T12:00:00Z', 'AB'), ('2026-12-01T03:00:00Z', 'A'), ('2026-12-08T02:59:59Z', 'ABC'),
    ({'pair': ('label', 'daily-B')}, 'AB'), ({'pair': ['backup_lv', 'data']}, 'DE'),
    ('20261203T030000Z-incr.lvdiff', 'ABC'), (rel(VOL, 'D'), 'D')])
def test_resolve_gives_the_chain_from_the_full_image(repo, point, chain):
    got = resolve(scan(repo)['volumes'][VOL], point)
    assert ids(got) == [rel(VOL, x) for x in chain]
    assert [b['base'] for b in got] == [None] + ids(got)[:-1]


@pytest.mark.parametrize('point, message', [
    ('2026-12-01T02:59:59Z', 'no backup was created at or before 2026-12-01T02:59:59Z: the oldest, '
                             'web1/vg0/data/20261201T030000Z-full.lvdiff, was created 2026-12-01T03:00:00Z'),
    ('20261205T030000Z-incr.lvdiff', 'unknown backup file 20261205T030000Z-incr.lvdiff'),
    (rel(OTHER_HOST, 'G'), 'unknown backup file web2/vg0/data/20261202T040000Z-incr.lvdiff'),
    ({'pair': ('label', 'weekly')}, 'no backup has the header pair label=weekly'),
    (42, "cannot resolve 42: use 'latest', a time YYYY-mm-ddTHH:MM:SSZ, a backup file name or "
         "{'pair': [key, value]}"),
    ('2026-12-32T00:00:00Z', "'2026-12-32T00:00:00Z' is not a time: no such day or hour")])
def test_resolve_refuses_a_point_it_cannot_find(repo, point, message):
    with pytest.raises(LvdiffError) as e:
        resolve(scan(repo)['volumes'][VOL], point)
    assert str(e.value) == message


def test_resolve_takes_one_volume(repo):
    volumes = scan(repo)['volumes']
    with pytest.raises(LvdiffError) as e:
        resolve(volumes[VOL] + volumes[OTHER_HOST], 'latest')
    assert str(e.value) == 'resolve takes the backups of one volume; these are of web1/vg0/data, web2/vg0/data'
    assert ids(resolve(volumes[OTHER_HOST], 'latest')) == [rel(OTHER_HOST, 'F'), rel(OTHER_HOST, 'G')]


def test_a_missing_middle_file_breaks_its_chain(repo, tmp_path):
    os.unlink(os.path.join(repo, rel(VOL, 'B')))
    backups = scan(repo)['volumes'][VOL]
    with pytest.raises(LvdiffError) as e:
        resolve(backups, '2026-12-07T00:00:00Z')
    assert str(e.value) == ('the chain of %s breaks: its base (volume UUID-B) is not in the repository'
                            % rel(VOL, 'C'))
    assert ids(resolve(backups, 'latest')) == [rel(VOL, 'D'), rel(VOL, 'E')]
    put(tmp_path, VOL, 'B', base='X')  # B back, made against a volume the repository lacks
    with pytest.raises(LvdiffError) as e:
        resolve(scan(repo)['volumes'][VOL], rel(VOL, 'C'))
    assert str(e.value) == ('the chain of %s breaks at %s: its base (volume UUID-X) is not in the repository'
                            % (rel(VOL, 'C'), rel(VOL, 'B')))


def test_a_file_of_another_volume_in_the_chain_directory_breaks_the_chain(repo, tmp_path):
    b = os.path.join(repo, rel(VOL, 'B'))
    os.unlink(b)
    put(tmp_path, VOL, 'B', uuid='UUID-web3-B', pairs={}, dest=b)  # web3's B, its pairs stripped, renamed into place
    with pytest.raises(LvdiffError) as e:
        resolve(scan(repo)['volumes'][VOL], 'web1/vg0/data/20261203T030000Z-incr.lvdiff')
    assert str(e.value) == ('the chain of %s breaks: its base (volume UUID-B) is not in the repository'
                            % rel(VOL, 'C'))


def test_resolve_refuses_a_chain_of_two_chunk_sizes(tmp_path):
    put(tmp_path, VOL, 'A')
    put(tmp_path, VOL, 'B', cs=2 * CS, chunks=4, base_chunks=4, base_map={0: 'a'}, src_map={0: 'b', 1: 'c'})
    with pytest.raises(LvdiffError) as e:
        resolve(scan(str(tmp_path / 'repo'))['volumes'][VOL], 'latest')
    assert str(e.value) == ('the chain of %s mixes chunk sizes: %s was made on a pool with 8192-byte chunks, its '
                            'base %s with 4096-byte chunks' % (rel(VOL, 'B'), rel(VOL, 'B'), rel(VOL, 'A')))


# --- verify_chain -----------------------------------------------------------------------------


def test_verify_chain_reads_every_file_whole(repo):
    chain = resolve(scan(repo)['volumes'][VOL], rel(VOL, 'C'))
    paths = [os.path.join(repo, rel(VOL, x)) for x in 'ABC']
    assert verify_chain(repo, chain) == {'bytes': sum(os.path.getsize(p) for p in paths), 'files': 3,
                                         'sha1s': [sha1_file(p) for p in paths],
                                         'summaries': [summary_of(p) for p in paths]}


def summary_of(path):
    with _diffio.open_diff(path) as reader:
        summary = _diffio.verify(reader)
    del summary['header']
    return summary


def test_a_copied_repository_resolves_and_verifies_the_same(repo, tmp_path):
    copy = str(tmp_path / 'copy')
    shutil.copytree(repo, copy, symlinks=True)
    here, there = scan(repo), scan(copy)
    assert dict((k, ids(v)) for k, v in here['volumes'].items()) == \
        dict((k, ids(v)) for k, v in there['volumes'].items())
    assert (here['partial'], here['misplaced']) == (there['partial'], there['misplaced'])
    for point in ('latest', '2026-12-03T00:00:00Z', {'pair': ('label', 'daily-C')}):
        chain = resolve(there['volumes'][VOL], point)
        assert ids(chain) == ids(resolve(here['volumes'][VOL], point))
        assert verify_chain(copy, chain) == verify_chain(repo, resolve(here['volumes'][VOL], point))


def test_verify_chain_names_a_corrupt_file(repo):
    chain = resolve(scan(repo)['volumes'][VOL], 'web1/vg0/data/20261203T030000Z-incr.lvdiff')
    index, pos, offset, length = flip_first_data_byte(os.path.join(repo, rel(VOL, 'B')))
    with pytest.raises(LvdiffError) as e:
        verify_chain(repo, chain)
    assert str(e.value) == ('%s: corrupt diff: record %d at file offset %d: DATA record checksum mismatch '
                            '(volume offset %d, length %d)' % (rel(VOL, 'B'), index, pos, offset, length))


def test_verify_chain_names_a_truncated_newest_file(repo):
    e_path = os.path.join(repo, rel(VOL, 'E'))
    with open(e_path, 'rb') as f:
        records = len(lvdiff_records(f.read()))
    size = os.path.getsize(e_path) - 10
    os.truncate(e_path, size)  # before the scan: the header still reads
    chain = resolve(scan(repo)['volumes'][VOL], 'latest')
    assert ids(chain) == [rel(VOL, 'D'), rel(VOL, 'E')]
    with pytest.raises(LvdiffError) as e:
        verify_chain(repo, chain)
    assert str(e.value) == ('%s: truncated diff: file ends at byte %d inside record %d (TRAILER)'
                            % (rel(VOL, 'E'), size, records - 1))


def test_verify_chain_refuses_a_file_changed_since_the_scan(repo, tmp_path):
    chain = resolve(scan(repo)['volumes'][VOL], rel(VOL, 'C'))
    b_path = os.path.join(repo, rel(VOL, 'B'))
    with open(b_path, 'rb') as f:
        good = f.read()
    records = lvdiff_records(good)
    header = json.loads(records[0][5])
    header['volume']['uuid'] = 'UUID-Z'  # same length: the file keeps its size and its inode
    records[0][5] = json.dumps(header, sort_keys=True, separators=(',', ':')).encode()
    with open(b_path, 'r+b') as f:
        f.write(lvdiff_bytes(records))
    assert os.path.getsize(b_path) == len(good)
    with pytest.raises(LvdiffError) as e:
        verify_chain(repo, chain)
    assert str(e.value) == "%s: changed since the scan: its header says volume_uuid 'UUID-Z', the scan read " \
                           "'UUID-B'" % rel(VOL, 'B')

    os.truncate(b_path, 100)
    with pytest.raises(LvdiffError) as e:
        verify_chain(repo, chain)
    assert str(e.value) == '%s: changed since the scan: %d bytes then, 100 now' % (rel(VOL, 'B'), len(good))

    put(tmp_path, VOL, 'B', dest=str(tmp_path / 'B.lvdiff'))
    os.replace(str(tmp_path / 'B.lvdiff'), b_path)  # the very same content, another file
    with pytest.raises(LvdiffError) as e:
        verify_chain(repo, chain)
    assert str(e.value) == '%s: replaced since the scan: another file has its name now' % rel(VOL, 'B')


def test_verify_chain_checks_each_link_from_the_headers_read(repo, tmp_path):
    backups = dict((b['id'], b) for b in scan(repo)['volumes'][VOL])
    with pytest.raises(LvdiffError) as e:
        verify_chain(repo, [backups[rel(VOL, 'A')], backups[rel(VOL, 'C')]])
    assert str(e.value) == ('%s: its base is volume UUID-B, but %s, before it in the chain, is volume UUID-A'
                            % (rel(VOL, 'C'), rel(VOL, 'A')))
    with pytest.raises(LvdiffError) as e:
        verify_chain(repo, [backups[rel(VOL, 'B')]])
    assert str(e.value) == ('%s: the chain starts with an incremental (base volume UUID-A), not a full image'
                            % rel(VOL, 'B'))
    with pytest.raises(LvdiffError) as e:
        verify_chain(repo, [backups[rel(VOL, 'A')], backups[rel(VOL, 'D')]])
    assert str(e.value) == '%s: a full image after %s in the chain' % (rel(VOL, 'D'), rel(VOL, 'A'))

    grown = ('web1', 'vg0', 'grown')
    put(tmp_path, grown, 'A')
    put(tmp_path, grown, 'B', base_chunks=16)  # says its base was twice A's size
    chain = resolve(scan(repo, lv='grown')['volumes'][grown], 'latest')
    with pytest.raises(LvdiffError) as e:
        verify_chain(repo, chain)
    assert str(e.value) == ('%s: its base is 65536 bytes, but %s, before it in the chain, is 32768 bytes'
                            % (rel(grown, 'B'), rel(grown, 'A')))


def test_verify_chain_follows_no_symlink_and_leaves_no_root(repo):
    chain = resolve(scan(repo)['volumes'][VOL], rel(VOL, 'B'))
    vg = os.path.join(repo, 'web1', 'vg0')
    os.rename(vg, vg + '-moved')
    os.symlink('vg0-moved', vg)
    with pytest.raises(LvdiffError) as e:
        verify_chain(repo, chain)
    assert str(e.value) == '%s: cannot open: a symlink is in its path' % rel(VOL, 'A')
    with pytest.raises(LvdiffError) as e:
        verify_chain(repo, [dict(chain[0], id='web1/vg0/../../20261201T030000Z-full.lvdiff')])
    assert str(e.value) == ("'web1/vg0/../../20261201T030000Z-full.lvdiff' is not a backup id "
                            "(host/vg/lv/<created as YYYYmmddTHHMMSSZ>-<full|incr>.lvdiff)")


def test_the_repository_imports_without_lxml_paramiko_or_lvm_commands():
    loaded = module_utils_loaded('from ansible_collections.lvdiff.thin.plugins.module_utils import _repository')
    assert '_repository' in loaded
    assert not loaded & set(['_thinmeta', '_lvm', '_command', '_transfer', '_backup', '_restore'])

"""repository_info on real repositories of real diff files (built in tmp_path as restore's and _repository's
tests build theirs): two hosts with the same VG and LV names, chains and their bytes, filters, broken chains,
duplicates, verification that reports (never fails for) a bad file, what is not taken as a backup, check
mode, the documented result and an import without lxml."""

import os

import pytest
import yaml

from ansible_collections.lvdiff.thin.plugins.module_utils import _repository
from ansible_collections.lvdiff.thin.plugins.modules import repository_info

from ansible_collections.lvdiff.thin.tests.support.diffs import flip_first_data_byte
from ansible_collections.lvdiff.thin.tests.support.repository import put_backup
from ansible_collections.lvdiff.thin.tests.support.imports import module_utils_loaded

VOL = ('web1', 'vg0', 'data')
OTHER_VG = ('web1', 'vg1', 'data')
OTHER_HOST = ('web2', 'vg0', 'data')  # the same VG and LV names on another host
# web1/vg0/data: full A -> B -> C -> D, then full E -> F; web1/vg1/data: full I; web2/vg0/data: full G -> H
TIMES = {'A': '2026-12-01T03:00:00Z', 'B': '2026-12-02T03:00:00Z', 'C': '2026-12-03T03:00:00Z',
         'D': '2026-12-04T03:00:00Z', 'E': '2026-12-08T03:00:00Z', 'F': '2026-12-09T03:00:00Z',
         'G': '2026-12-01T04:00:00Z', 'H': '2026-12-02T04:00:00Z', 'I': '2026-12-05T03:00:00Z'}
BASES = {'A': None, 'B': 'A', 'C': 'B', 'D': 'C', 'E': None, 'F': 'E', 'G': None, 'H': 'G', 'I': None}


def put(tmp_path, place, letter, created=None, base=None, uuid=None):
    """Write backup letter of place where the layout puts it; its volume UUID is UUID-<letter> (or uuid),
    its base the backup base (default BASES)."""
    return put_backup(tmp_path, place, letter, created or TIMES[letter], BASES[letter] if base is None else base,
                      uuid)


def rel(place, letter, created=None):
    kind = 'full' if BASES[letter] is None else 'incr'
    return '/'.join(place) + '/' + _repository.backup_name(created or TIMES[letter], kind == 'full')


def ids(place, letters):
    return [rel(place, x) for x in letters]


@pytest.fixture
def repo(tmp_path):
    """The repository: three volumes, a partial transfer, a symlink, a note, a file that is no diff."""
    for place, letters in ((VOL, 'ABCDEF'), (OTHER_VG, 'I'), (OTHER_HOST, 'GH')):
        for letter in letters:
            put(tmp_path, place, letter)
    data = tmp_path / 'repo' / 'web1' / 'vg0' / 'data'
    (data / '20261210T030000Z-incr.lvdiff.part').write_bytes(b'partial')
    os.symlink(os.path.basename(rel(VOL, 'C')), str(data / '20261205T030000Z-incr.lvdiff'))
    (data / 'notes.txt').write_text('restore with care')
    (tmp_path / 'repo' / 'web2' / 'vg0' / 'data' / '20261203T040000Z-incr.lvdiff').write_bytes(b'GIF89a, not a diff')
    return str(tmp_path / 'repo')


def size(root, place, letters):
    return sum(os.path.getsize(os.path.join(root, rel(place, x))) for x in letters)


# A format 1 file's compression and encryption, in each entry of files.
PLAIN = {'compression': 'none', 'encryption': 'none', 'key_id': None}


def chain(root, place, letters):
    return {'ids': ids(place, letters), 'newest': TIMES[letters[-1]], 'bytes': size(root, place, letters)}


def volume(root, place, letters, fulls, chains, **kw):
    """The expected report of a volume of these backups (oldest first) without verification."""
    return dict({'host': place[0], 'vg': place[1], 'lv': place[2], 'backups': len(letters), 'fulls': fulls,
                 'bytes': size(root, place, letters), 'oldest': TIMES[letters[0]], 'newest': TIMES[letters[-1]],
                 'chains': [chain(root, place, c) for c in chains], 'orphans': [], 'duplicates': [],
                 'verified': [], 'keyless': [], 'errors': []}, **kw)


def info(run_module, root, check_mode=False, **options):
    rc, res = run_module(repository_info, dict(options, repository=root), check_mode=check_mode)
    assert rc == 0 and res['changed'] is False and 'failed' not in res, res
    del res['invocation']
    return res


def corrupt_message(root, place, letter, flipped):
    index, pos, offset, length = flipped
    return ('%s: corrupt diff: record %d at file offset %d: DATA record checksum mismatch (volume offset %d, '
            'length %d)' % (rel(place, letter), index, pos, offset, length))


# --- the report ----------------------------------------------------------------------------------------------------


def test_each_volume_is_reported_apart_with_what_is_not_a_backup(repo, run_module):
    res = info(run_module, repo)
    assert res['volumes'] == [volume(repo, VOL, 'ABCDEF', 2, ['ABCD', 'EF']),
                              volume(repo, OTHER_VG, 'I', 1, ['I']),
                              volume(repo, OTHER_HOST, 'GH', 1, ['GH'])]
    assert res['partial'] == ['web1/vg0/data/20261210T030000Z-incr.lvdiff.part']
    assert res['misplaced'] == [
        {'path': 'web1/vg0/data/20261205T030000Z-incr.lvdiff', 'why': 'symlink'},
        {'path': 'web1/vg0/data/notes.txt',
         'why': 'not a backup file name (<created as YYYYmmddTHHMMSSZ>-<full|incr>.lvdiff)'}]
    assert res['unreadable'] == [
        {'path': 'web2/vg0/data/20261203T040000Z-incr.lvdiff',
         'msg': "not a diff file: it starts with b'GIF89a, not a d', neither the lvdiff magic nor HYPERLAYER/1.0"}]
    total = size(repo, VOL, 'ABCDEF') + size(repo, OTHER_VG, 'I') + size(repo, OTHER_HOST, 'GH')
    assert res['summary'] == {'volumes': 3, 'backups': 9, 'bytes': total, 'broken_chains': 0, 'orphans': 0,
                              'verified': 0, 'errors': 0}


@pytest.mark.parametrize('filters, places', [
    ({'host': 'web1'}, [VOL, OTHER_VG]), ({'vg': 'vg0'}, [VOL, OTHER_HOST]), ({'vg': 'vg1'}, [OTHER_VG]),
    ({'lv': 'data'}, [VOL, OTHER_VG, OTHER_HOST]), ({'host': 'web2', 'lv': 'data'}, [OTHER_HOST]),
    ({'host': 'web1', 'vg': 'vg0'}, [VOL]), ({'host': 'web3'}, []), ({'lv': 'logs'}, [])])
def test_filters_narrow_the_scan(repo, run_module, filters, places):
    res = info(run_module, repo, **filters)
    assert [(v['host'], v['vg'], v['lv']) for v in res['volumes']] == places
    assert not any('files' in v for v in res['volumes'])
    assert res['summary']['volumes'] == len(places)
    assert res['partial'] == (['web1/vg0/data/20261210T030000Z-incr.lvdiff.part'] if VOL in places else [])


def test_the_files_of_one_volume_are_listed_when_it_alone_is_asked_for(repo, run_module):
    os.unlink(os.path.join(repo, rel(VOL, 'B')))
    one = dict(zip(('host', 'vg', 'lv'), VOL))
    res = info(run_module, repo, **one)
    files = [{'id': rel(VOL, x), 'created': TIMES[x], 'full': BASES[x] is None, 'file_size': size(repo, VOL, x),
              'base': rel(VOL, BASES[x]) if x in 'DF' else None, 'volume_uuid': 'UUID-' + x, **PLAIN}
             for x in 'ACDEF']  # C's base B is missing
    assert [v['files'] for v in res['volumes']] == [files]
    assert 'files' not in info(run_module, repo, list_files=False, **one)['volumes'][0]
    listed = info(run_module, repo, list_files=True)['volumes']
    assert [v['files'] for v in listed] == [files, [dict(files[3], id=rel(OTHER_VG, 'I'), created=TIMES['I'],
                                                         file_size=size(repo, OTHER_VG, 'I'), volume_uuid='UUID-I')],
                                            [{'id': rel(OTHER_HOST, 'G'), 'created': TIMES['G'], 'full': True,
                                              'file_size': size(repo, OTHER_HOST, 'G'), 'base': None,
                                              'volume_uuid': 'UUID-G', **PLAIN},
                                             {'id': rel(OTHER_HOST, 'H'), 'created': TIMES['H'], 'full': False,
                                              'file_size': size(repo, OTHER_HOST, 'H'),
                                              'base': rel(OTHER_HOST, 'G'), 'volume_uuid': 'UUID-H', **PLAIN}]]


# --- broken chains, duplicates, links that cannot be made ---------------------------------------------------------


def test_a_missing_middle_file_orphans_its_successors(repo, run_module):
    os.unlink(os.path.join(repo, rel(VOL, 'B')))
    res = info(run_module, repo, verify='all')
    orphans = [{'id': rel(VOL, 'C'), 'missing_base': 'UUID-B'}, {'id': rel(VOL, 'D'), 'missing_base': 'UUID-B'}]
    assert res['volumes'][0] == volume(repo, VOL, 'ACDEF', 2, ['A', 'EF'], orphans=orphans,
                                       verified=ids(VOL, 'AEF'))  # orphans are not read
    assert res['summary'] == dict(res['summary'], backups=8, broken_chains=1, orphans=2, verified=6, errors=0)


def test_a_missing_full_image_orphans_its_whole_chain(repo, run_module):
    os.unlink(os.path.join(repo, rel(VOL, 'A')))
    res = info(run_module, repo, host='web1', vg='vg0')
    assert res['volumes'] == [volume(repo, VOL, 'BCDEF', 1, ['EF'], orphans=[
        {'id': rel(VOL, x), 'missing_base': 'UUID-A'} for x in 'BCD'])]
    assert (res['summary']['broken_chains'], res['summary']['orphans']) == (1, 3)


def test_duplicates_and_branches_are_reported_and_every_file_verified(repo, run_module, tmp_path):
    again = put(tmp_path, VOL, 'C', created='2026-12-03T05:00:00Z')  # C made again from the same snapshot
    branch = put(tmp_path, VOL, 'X', created='2026-12-03T12:00:00Z', base='B')  # another incremental against B
    kept, x = ('web1/vg0/data/' + os.path.basename(p) for p in (again, branch))
    res = info(run_module, repo, verify='all', host='web1', vg='vg0', list_files=False)
    every = ids(VOL, 'ABC') + [kept, x] + ids(VOL, 'DEF')
    abcd = ids(VOL, 'AB') + [kept, x, rel(VOL, 'D')]
    assert res['volumes'] == [dict(
        volume(repo, VOL, 'ABCDEF', 2, ['EF'], duplicates=[{'id': rel(VOL, 'C'), 'kept': kept}], verified=every),
        backups=8, bytes=size(repo, VOL, 'ABCDEF') + os.path.getsize(again) + os.path.getsize(branch),
        chains=[{'ids': abcd, 'newest': TIMES['D'], 'bytes': sum(os.path.getsize(os.path.join(repo, i)) for i in abcd)},
                chain(repo, VOL, 'EF')])]


def test_a_volume_whose_backups_cannot_be_linked_is_reported_the_others_still(repo, run_module, tmp_path):
    loop = ('web3', 'vg0', 'data')
    put(tmp_path, loop, 'B', uuid='UUID-X', base='Y')
    put(tmp_path, loop, 'C', uuid='UUID-Y', base='X')
    res = info(run_module, repo, verify='all', list_files=True)
    assert [(v['host'], v['errors']) for v in res['volumes']][-1] == ('web3', [
        {'id': 'web3/vg0/data', 'msg': 'the chain of %s loops: %s is its own ancestor'
                                       % (rel(loop, 'B'), rel(loop, 'B'))}])
    assert res['volumes'][-1]['files'] == [
        {'id': rel(loop, x), 'created': TIMES[x], 'full': False, 'file_size': size(repo, loop, x), 'base': None,
         'volume_uuid': u, **PLAIN} for x, u in (('B', 'UUID-X'), ('C', 'UUID-Y'))]
    assert [v['verified'] for v in res['volumes']] == [ids(VOL, 'ABCDEF'), ids(OTHER_VG, 'I'),
                                                       ids(OTHER_HOST, 'GH'), []]
    assert res['summary'] == dict(res['summary'], volumes=4, errors=1, verified=9)


# --- verification: reported, never a failure ----------------------------------------------------------------------


def test_verify_all_reports_a_corrupt_file_and_succeeds(repo, run_module):
    flipped = flip_first_data_byte(os.path.join(repo, rel(VOL, 'B')))
    res = info(run_module, repo, verify='all')
    assert res['volumes'] == [
        volume(repo, VOL, 'ABCDEF', 2, ['ABCD', 'EF'], verified=ids(VOL, 'AEF'),  # C and D come after B: not read
               errors=[{'id': rel(VOL, 'B'), 'msg': corrupt_message(repo, VOL, 'B', flipped)}]),
        volume(repo, OTHER_VG, 'I', 1, ['I'], verified=ids(OTHER_VG, 'I')),
        volume(repo, OTHER_HOST, 'GH', 1, ['GH'], verified=ids(OTHER_HOST, 'GH'))]
    assert res['summary'] == dict(res['summary'], verified=6, errors=1)


def test_verify_sample_reads_only_the_newest_restorable_chain(repo, run_module):
    flipped = flip_first_data_byte(os.path.join(repo, rel(VOL, 'B')))  # not in the newest chain: not seen
    res = info(run_module, repo, verify='sample')
    assert [(v['verified'], v['errors']) for v in res['volumes']] == [
        (ids(VOL, 'EF'), []), (ids(OTHER_VG, 'I'), []), (ids(OTHER_HOST, 'GH'), [])]
    os.unlink(os.path.join(repo, rel(VOL, 'E')))  # F, the newest, is an orphan now: D's chain is the newest
    res = info(run_module, repo, verify='sample', host='web1', vg='vg0')
    assert (res['volumes'][0]['verified'], res['volumes'][0]['errors']) == (
        ids(VOL, 'A'), [{'id': rel(VOL, 'B'), 'msg': corrupt_message(repo, VOL, 'B', flipped)}])


def test_a_file_changed_since_the_scan_is_reported(repo, run_module, monkeypatch):
    real_scan = _repository.scan

    def scan_then_truncate(*args, **kw):
        found = real_scan(*args, **kw)
        os.truncate(os.path.join(repo, rel(OTHER_HOST, 'H')), 100)
        return found
    monkeypatch.setattr(_repository, 'scan', scan_then_truncate)
    res = info(run_module, repo, verify='all', host='web2')
    assert (res['volumes'][0]['verified'], res['volumes'][0]['errors']) == (ids(OTHER_HOST, 'G'), [
        {'id': rel(OTHER_HOST, 'H'), 'msg': '%s: changed since the scan: %d bytes then, 100 now'
                                            % (rel(OTHER_HOST, 'H'), res['volumes'][0]['bytes'] - size(
                                                repo, OTHER_HOST, 'G'))}])


def test_check_mode_gives_the_same_report(repo, run_module):
    os.unlink(os.path.join(repo, rel(VOL, 'B')))
    flip_first_data_byte(os.path.join(repo, rel(VOL, 'F')))
    for verify in ('none', 'sample', 'all'):
        assert info(run_module, repo, True, verify=verify) == info(run_module, repo, verify=verify)


# --- what fails: the repository itself, an option ------------------------------------------------------------------


def test_a_repository_that_cannot_be_read_fails(repo, run_module, monkeypatch, tmp_path):
    rc, res = run_module(repository_info, {'repository': str(tmp_path / 'nowhere')})
    assert rc == 1 and res['msg'] == 'cannot open the backup repository %s: No such file or directory' % (
        tmp_path / 'nowhere')
    notes = os.path.join(repo, 'web1', 'vg0', 'data', 'notes.txt')
    rc, res = run_module(repository_info, {'repository': notes})
    assert rc == 1 and res['msg'] == 'cannot open the backup repository %s: Not a directory' % notes
    monkeypatch.setattr(_repository, 'MAX_ENTRIES', 1)
    rc, res = run_module(repository_info, {'repository': repo})
    assert rc == 1 and res['msg'] == ('%s holds more than 1 entries, more than a backup repository directory may '
                                      'hold: nothing was scanned' % repo)
    rc, res = run_module(repository_info, {'repository': repo, 'host': '../web1'})
    assert rc == 1 and res['msg'].startswith("host name '../web1' is not allowed in a backup repository")
    rc, res = run_module(repository_info, {'repository': repo, 'verify': 'some'})
    assert rc == 1 and res['msg'].startswith('value of verify must be one of: none, sample, all')


# --- the documented result, the imports ----------------------------------------------------------------------------


def test_every_returned_field_is_documented(repo, run_module, tmp_path):
    os.unlink(os.path.join(repo, rel(VOL, 'B')))
    flip_first_data_byte(os.path.join(repo, rel(VOL, 'F')))
    put(tmp_path, OTHER_HOST, 'H', created='2026-12-02T05:00:00Z')
    res = info(run_module, repo, verify='all', list_files=True)
    doc = yaml.safe_load(repository_info.RETURN)
    assert set(res) - {'changed'} == set(doc)
    fields = doc['volumes']['contains']
    assert all(set(v) == set(fields) for v in res['volumes'])
    for key in ('chains', 'orphans', 'duplicates', 'errors', 'files'):
        items = [item for v in res['volumes'] for item in v[key]]
        assert items and all(set(item) == set(fields[key]['contains']) for item in items), key
    for key in ('misplaced', 'unreadable'):
        assert res[key] and all(set(item) == set(doc[key]['contains']) for item in res[key])
    assert set(res['summary']) == set(doc['summary']['contains'])
    assert res['summary'] == dict(res['summary'], broken_chains=1, orphans=2, errors=1)


def test_the_module_imports_without_lxml_paramiko_or_lvm_commands():
    loaded = module_utils_loaded('from ansible_collections.lvdiff.thin.plugins.modules import repository_info')
    assert set(['_repository', '_retention']) <= loaded
    assert not loaded & set(['_thinmeta', '_lvm', '_command', '_transfer', '_backup', '_restore'])

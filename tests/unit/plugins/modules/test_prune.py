"""prune on real repositories of real diff files (written by the collection's writer, as repository_info's tests
write theirs): what a policy removes and that every kept point still restores, check mode, orphans, what is
never removed (misplaced files, symlinks, partial transfers), a file replaced between the scan and its removal,
bad policies, two hosts with the same VG and LV names, reruns, the documented result and an import without lxml."""

import errno
import os
import shutil

import pytest
import yaml

from ansible_collections.lvdiff.thin.plugins.module_utils import _repository
from ansible_collections.lvdiff.thin.plugins.modules import prune

from ansible_collections.lvdiff.thin.tests.support.imports import module_utils_loaded
from ansible_collections.lvdiff.thin.tests.support.repository import put_backup

VOL = ('web1', 'vg0', 'data')
OTHER_HOST = ('web2', 'vg0', 'data')  # the same VG and LV names on another host
# web1/vg0/data: full A -> B -> C -> D, then full E -> F; web2/vg0/data: full G -> H
TIMES = {'A': '2026-12-01T03:00:00Z', 'B': '2026-12-02T03:00:00Z', 'C': '2026-12-03T03:00:00Z',
         'D': '2026-12-04T03:00:00Z', 'E': '2026-12-08T03:00:00Z', 'F': '2026-12-09T03:00:00Z',
         'G': '2026-12-01T04:00:00Z', 'H': '2026-12-02T04:00:00Z', 'X': '2026-12-03T12:00:00Z'}
BASES = {'A': None, 'B': 'A', 'C': 'B', 'D': 'C', 'E': None, 'F': 'E', 'G': None, 'H': 'G', 'X': 'B'}
KEEP_LAST_1 = {'keep_last': 1}
PART = 'web1/vg0/data/20261210T030000Z-incr.lvdiff.part'
SYMLINK = 'web1/vg0/data/20261205T030000Z-incr.lvdiff'
MISPLACED = 'web1/vg0/data/20261201T040000Z-full.lvdiff'


def put(tmp_path, place, letter, created=None):
    return put_backup(tmp_path, place, letter, created or TIMES[letter], BASES[letter])


def rel(place, letter, created=None):
    return '/'.join(place) + '/' + _repository.backup_name(created or TIMES[letter], BASES[letter] is None)


def ids(place, letters):
    return [rel(place, x) for x in letters]


@pytest.fixture
def repo(tmp_path):
    """Two volumes, and beside web1's backups: a partial transfer, a symlink to a file outside the repository,
    web2's full image copied in (its header places it in web2) and a note."""
    for place, letters in ((VOL, 'ABCDEF'), (OTHER_HOST, 'GH')):
        for letter in letters:
            put(tmp_path, place, letter)
    root = tmp_path / 'repo'
    (root / PART).write_bytes(b'partial')
    (tmp_path / 'precious').write_bytes(b'not a backup, outside the repository')
    os.symlink(str(tmp_path / 'precious'), str(root / SYMLINK))
    shutil.copy(str(root / rel(OTHER_HOST, 'G')), str(root / MISPLACED))
    (root / 'web1' / 'vg0' / 'data' / 'notes.txt').write_text('restore with care')
    return str(root)


def size(root, place, letters):
    return sum(os.path.getsize(os.path.join(root, rel(place, x))) for x in letters)


def listing(root):
    """Every name below root with its inode: what a run that removes nothing must leave as it was."""
    return sorted((os.path.relpath(os.path.join(d, n), root), os.lstat(os.path.join(d, n)).st_ino)
                  for d, dirs, files in os.walk(root) for n in dirs + files)


def vols(*places):
    return [dict(zip(('host', 'vg', 'lv'), place)) for place in places]


def run_prune(run_module, root, policy, places=(VOL,), check_mode=False, **options):
    rc, res = run_module(prune, dict(options, repository=root, volumes=vols(*places), policy=policy),
                         check_mode=check_mode)
    assert rc == 0 and 'failed' not in res, res
    del res['invocation']
    return res


def kept(place, reasons):
    """The kept entries of place, newest first: reasons maps each letter to its reasons."""
    order = sorted(reasons, key=lambda x: TIMES[x], reverse=True)
    return [{'id': rel(place, x), 'created': TIMES[x], 'full': BASES[x] is None, 'reasons': reasons[x]}
            for x in order]


def web1_others():
    """What the fixture put beside web1's backups, as the volume's result reports it."""
    return {'partial': [PART],
            'misplaced': [{'path': MISPLACED, 'why': 'its header pairs place it in web2/vg0/data'},
                          {'path': SYMLINK, 'why': 'symlink'},
                          {'path': 'web1/vg0/data/notes.txt',
                           'why': 'not a backup file name (<created as YYYYmmddTHHMMSSZ>-<full|incr>.lvdiff)'}],
            'unreadable': []}


def assert_every_kept_point_restores(root, place):
    backups = _repository.scan(root, *place)['volumes'][place]
    for b in backups:
        chain = _repository.resolve(backups, b['id'])
        assert _repository.verify_chain(root, chain)['files'] == len(chain)


# --- what a policy removes ----------------------------------------------------------------------------------------


def test_a_policy_removes_newest_first_what_it_does_not_keep(repo, run_module):
    freed = size(repo, VOL, 'ABCD')
    res = run_prune(run_module, repo, KEEP_LAST_1)
    assert res['changed'] is True
    assert res['volumes'] == [dict(
        web1_others(), host='web1', vg='vg0', lv='data', failed=False,
        kept=kept(VOL, {'F': ['newest', 'last'], 'E': ['base of %s' % rel(VOL, 'F')]}),
        pruned=ids(VOL, 'DCBA'), orphans=[], skipped=[],
        bytes_freed=freed, bytes_kept=size(repo, VOL, 'EF'))]
    assert [os.path.exists(os.path.join(repo, i)) for i in ids(VOL, 'ABCDEF')] == [False] * 4 + [True] * 2
    assert all(os.path.lexists(os.path.join(repo, p)) for p in (PART, SYMLINK, MISPLACED))
    assert os.path.exists(os.path.join(os.path.dirname(repo), 'precious'))
    assert_every_kept_point_restores(repo, VOL)
    assert res['summary'] == {'volumes': 1, 'failed': 0, 'kept': 2, 'pruned': 4, 'orphans': 0, 'skipped': 0,
                              'bytes_freed': freed, 'bytes_kept': size(repo, VOL, 'EF')}


def test_a_branch_is_pruned_its_base_stays_for_the_kept_chain(repo, run_module, tmp_path):
    put(tmp_path, VOL, 'X')  # a second incremental against B, made between C and D
    res = run_prune(run_module, repo, {'keep_last': 3})
    assert res['volumes'][0]['pruned'] == ids(VOL, 'X')
    assert res['volumes'][0]['kept'] == kept(VOL, {
        'F': ['newest', 'last'], 'E': ['last', 'base of %s' % rel(VOL, 'F')], 'D': ['last'],
        'C': ['base of %s' % rel(VOL, 'D')], 'B': ['base of %s' % rel(VOL, 'C')], 'A': ['base of %s' % rel(VOL, 'B')]})
    assert_every_kept_point_restores(repo, VOL)


def test_copies_of_one_backup_are_removed_together(repo, run_module, tmp_path):
    again = put(tmp_path, VOL, 'C', created='2026-12-03T05:00:00Z')  # C written again from the same snapshot
    copy = 'web1/vg0/data/' + os.path.basename(again)
    res = run_prune(run_module, repo, KEEP_LAST_1)
    assert res['volumes'][0]['pruned'] == [rel(VOL, 'D'), copy] + ids(VOL, 'CBA')


def test_a_duplicate_is_kept_with_its_copy(repo, run_module, tmp_path):
    again = put(tmp_path, VOL, 'C', created='2026-12-03T05:00:00Z')
    copy = 'web1/vg0/data/' + os.path.basename(again)
    res = run_prune(run_module, repo, {'keep_last': 3})
    assert res['changed'] is False
    assert {'id': rel(VOL, 'C'), 'created': TIMES['C'], 'full': False,
            'reasons': ['copy of %s' % copy]} in res['volumes'][0]['kept']


def test_a_rerun_changes_nothing(repo, run_module, tmp_path):
    put(tmp_path, VOL, 'X')
    first = run_prune(run_module, repo, {'keep_weekly': 2})  # F of the week of December 7, D of the week before
    assert first['changed'] is True and first['volumes'][0]['pruned'] == ids(VOL, 'X')
    again = run_prune(run_module, repo, {'keep_weekly': 2})
    assert again['changed'] is False and again['volumes'][0]['pruned'] == []
    assert again['volumes'][0]['kept'] == first['volumes'][0]['kept']


def test_without_a_keep_rule_everything_is_kept_orphans_too(repo, run_module):
    os.unlink(os.path.join(repo, rel(VOL, 'B')))
    before = listing(repo)
    res = run_prune(run_module, repo, {'full_every': 7, 'full_days': 30}, prune_orphans=True)
    assert res['changed'] is False and res['volumes'][0]['pruned'] == []
    assert res['volumes'][0]['kept'] == kept(VOL, dict((x, ['no keep rule']) for x in 'ACDEF'))
    assert res['volumes'][0]['orphans'] == ids(VOL, 'DC')
    assert listing(repo) == before


# --- check mode -----------------------------------------------------------------------------------------------------


def test_check_mode_removes_nothing_and_reports_what_a_run_does(repo, run_module):
    os.unlink(os.path.join(repo, rel(VOL, 'B')))  # orphans C and D
    before = listing(repo)
    options = dict(policy=KEEP_LAST_1, places=(VOL, OTHER_HOST), prune_orphans=True)
    checked = run_prune(run_module, repo, check_mode=True, **options)
    assert listing(repo) == before
    assert checked['changed'] is True and checked['volumes'][0]['pruned'] == ids(VOL, 'DCA')
    assert run_prune(run_module, repo, **options) == checked


# --- orphans --------------------------------------------------------------------------------------------------------


def test_orphans_are_kept_by_default_and_removed_with_prune_orphans(repo, run_module):
    os.unlink(os.path.join(repo, rel(VOL, 'B')))
    res = run_prune(run_module, repo, KEEP_LAST_1)
    assert res['volumes'][0]['pruned'] == ids(VOL, 'A')
    assert res['volumes'][0]['orphans'] == ids(VOL, 'DC')
    assert res['volumes'][0]['kept'] == kept(VOL, {'F': ['newest', 'last'], 'E': ['base of %s' % rel(VOL, 'F')],
                                                   'D': ['orphan'], 'C': ['orphan']})
    assert res['volumes'][0]['bytes_kept'] == size(repo, VOL, 'CDEF')
    res = run_prune(run_module, repo, KEEP_LAST_1, prune_orphans=True)
    assert res['volumes'][0]['pruned'] == ids(VOL, 'DC') and res['volumes'][0]['orphans'] == ids(VOL, 'DC')
    assert sorted(os.listdir(os.path.join(repo, *VOL))) == sorted(
        [os.path.basename(p) for p in ids(VOL, 'EF') + [PART, SYMLINK, MISPLACED]] + ['notes.txt'])


# --- what is never removed ------------------------------------------------------------------------------------------


def test_misplaced_symlinked_and_partial_files_are_never_removed(repo, run_module, tmp_path):
    os.symlink(os.path.basename(rel(VOL, 'C')), os.path.join(repo, 'web1/vg0/data/20261206T030000Z-full.lvdiff'))
    res = run_prune(run_module, repo, KEEP_LAST_1, prune_orphans=True)
    assert res['volumes'][0]['pruned'] == ids(VOL, 'DCBA')
    for path in (PART, SYMLINK, MISPLACED, 'web1/vg0/data/notes.txt', 'web1/vg0/data/20261206T030000Z-full.lvdiff'):
        assert os.path.lexists(os.path.join(repo, path)), path
    assert (tmp_path / 'precious').read_bytes() == b'not a backup, outside the repository'


def test_a_volume_whose_directory_is_a_symlink_fails_alone(repo, run_module, tmp_path):
    put_backup(tmp_path, OTHER_HOST, 'J', '2026-12-10T04:00:00Z', None)
    os.makedirs(os.path.join(repo, 'web3', 'vg0'))
    os.symlink(os.path.join(repo, *VOL), os.path.join(repo, 'web3', 'vg0', 'data'))
    res = run_prune(run_module, repo, KEEP_LAST_1, places=(('web3', 'vg0', 'data'), OTHER_HOST))
    assert res['volumes'][0] == {'host': 'web3', 'vg': 'vg0', 'lv': 'data', 'failed': True,
                                 'msg': 'cannot prune web3/vg0/data: web3/vg0/data: symlink',
                                 'kept': [], 'pruned': [], 'orphans': [], 'skipped': [], 'bytes_freed': 0,
                                 'bytes_kept': 0, 'partial': [], 'misplaced': [], 'unreadable': []}
    assert all(os.path.exists(os.path.join(repo, i)) for i in ids(VOL, 'ABCDEF'))
    assert res['volumes'][1]['pruned'] == ids(OTHER_HOST, 'HG') and res['volumes'][1]['failed'] is False
    assert res['summary']['failed'] == 1 and res['changed'] is True


def test_a_volume_whose_backups_cannot_be_linked_fails_alone(repo, run_module, tmp_path):
    loop = ('web3', 'vg0', 'data')
    put_backup(tmp_path, loop, 'X', TIMES['B'], 'Y')
    put_backup(tmp_path, loop, 'Y', TIMES['C'], 'X')
    res = run_prune(run_module, repo, KEEP_LAST_1, places=(VOL, loop))
    assert res['volumes'][1]['msg'] == 'the chain of %s loops: %s is its own ancestor' % (
        rel(loop, 'B'), rel(loop, 'B'))
    assert len(os.listdir(os.path.join(repo, *loop))) == 2
    assert res['volumes'][0]['pruned'] == ids(VOL, 'DCBA')


def test_a_volume_without_backups_is_fine(repo, run_module):
    res = run_prune(run_module, repo, KEEP_LAST_1, places=(('web9', 'vg0', 'data'),))
    assert res['changed'] is False
    assert res['volumes'] == [{'host': 'web9', 'vg': 'vg0', 'lv': 'data', 'failed': False, 'kept': [], 'pruned': [],
                               'orphans': [], 'skipped': [], 'bytes_freed': 0, 'bytes_kept': 0, 'partial': [],
                               'misplaced': [], 'unreadable': []}]


# --- a file that changes between the scan and its removal --------------------------------------------------------


def replace_file(path):
    """path's content under a new inode, as rsync leaves a file it updated."""
    shutil.copy(path, path + '.new')
    os.replace(path + '.new', path)


def remove_file(path):
    os.unlink(path)


@pytest.mark.parametrize('change, why', [
    (replace_file, 'replaced since the scan, another file has its name now'),
    (remove_file, 'gone since the scan')])
def test_a_file_changed_after_the_scan_is_left_with_its_chain(repo, run_module, monkeypatch, change, why):
    real_scan = _repository.scan
    path_c = os.path.join(repo, rel(VOL, 'C'))

    def scan_then_change(*args, **kw):
        found = real_scan(*args, **kw)
        change(path_c)
        return found
    monkeypatch.setattr(_repository, 'scan', scan_then_change)
    res = run_prune(run_module, repo, KEEP_LAST_1)
    held = 'in the chain of %s, which was left in place' % rel(VOL, 'C')
    assert res['volumes'][0]['pruned'] == ids(VOL, 'D')
    assert res['volumes'][0]['skipped'] == [{'id': rel(VOL, 'C'), 'why': why}, {'id': rel(VOL, 'B'), 'why': held},
                                            {'id': rel(VOL, 'A'), 'why': held}]
    left = [os.path.exists(os.path.join(repo, i)) for i in ids(VOL, 'ABCD')]
    assert left == [True, True, change is replace_file, False]
    assert res['summary']['skipped'] == 3


def test_a_file_that_cannot_be_removed_is_left_with_its_chain(repo, run_module, monkeypatch):
    real_unlink = os.unlink

    def unlink(path, *args, **kw):
        if path == os.path.basename(rel(VOL, 'C')):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real_unlink(path, *args, **kw)
    monkeypatch.setattr(os, 'unlink', unlink)
    res = run_prune(run_module, repo, KEEP_LAST_1)
    assert res['volumes'][0]['pruned'] == ids(VOL, 'D')
    assert [s['id'] for s in res['volumes'][0]['skipped']] == ids(VOL, 'CBA')
    assert res['volumes'][0]['skipped'][0]['why'] == 'cannot remove: Permission denied'
    assert_every_kept_point_restores(repo, VOL)


# --- two hosts ----------------------------------------------------------------------------------------------------


def test_two_hosts_with_the_same_vg_and_lv_stay_apart(repo, run_module, tmp_path):
    newer = put_backup(tmp_path, OTHER_HOST, 'J', '2026-12-10T04:00:00Z', None)  # web2's newest, a full image
    res = run_prune(run_module, repo, KEEP_LAST_1, places=(OTHER_HOST,))
    assert res['volumes'][0]['pruned'] == ids(OTHER_HOST, 'HG')
    assert res['volumes'][0]['misplaced'] == [] and res['volumes'][0]['partial'] == []  # web1's are web1's
    assert all(os.path.exists(os.path.join(repo, i)) for i in ids(VOL, 'ABCDEF'))
    res = run_prune(run_module, repo, KEEP_LAST_1, places=(OTHER_HOST, VOL))
    assert [(v['host'], v['pruned']) for v in res['volumes']] == [('web2', []), ('web1', ids(VOL, 'DCBA'))]
    assert os.path.exists(newer)


# --- what fails: the options, the repository ------------------------------------------------------------------------


@pytest.mark.parametrize('options, msg', [
    ({'policy': {'keep_daily': -1}}, 'retention policy: keep_daily must be a whole number >= 0, not -1'),
    ({'policy': {'keep_dayly': 7}}, 'Unsupported parameters for (basic.py) module: policy.keep_dayly.'),
    ({'volumes': [{'host': '..', 'vg': 'vg0', 'lv': 'data'}]},
     "host name '..' is not allowed in a backup repository: use A-Z a-z 0-9 + _ . - (not - first), not . or .., "
     'at most 255 characters'),
    ({'volumes': vols(OTHER_HOST, VOL, OTHER_HOST)}, 'volume web2/vg0/data is listed twice in volumes')])
def test_a_bad_option_fails_and_removes_nothing(repo, run_module, options, msg):
    before = listing(repo)
    args = dict({'repository': repo, 'volumes': vols(VOL, OTHER_HOST), 'policy': KEEP_LAST_1}, **options)
    rc, res = run_module(prune, args)
    assert rc == 1 and res['msg'].startswith(msg), res['msg']
    assert listing(repo) == before


def test_a_repository_that_cannot_be_opened_fails(run_module, tmp_path):
    rc, res = run_module(prune, {'repository': str(tmp_path / 'nowhere'), 'volumes': vols(VOL), 'policy': KEEP_LAST_1})
    assert rc == 1 and res['msg'] == 'cannot open the backup repository %s: No such file or directory' % (
        tmp_path / 'nowhere')


# --- the documented result, the imports ----------------------------------------------------------------------------


def test_every_returned_field_is_documented(repo, run_module, tmp_path, monkeypatch):
    os.unlink(os.path.join(repo, rel(VOL, 'B')))
    (tmp_path / 'repo' / 'web1' / 'vg0' / 'data' / '20261211T030000Z-incr.lvdiff').write_bytes(b'not a diff')
    os.makedirs(os.path.join(repo, 'web3', 'vg0'))
    os.symlink(os.path.join(repo, *VOL), os.path.join(repo, 'web3', 'vg0', 'data'))
    monkeypatch.setattr(prune, '_changed', lambda dir_fd, backup: 'gone since the scan')
    res = run_prune(run_module, repo, KEEP_LAST_1, places=(VOL, OTHER_HOST, ('web3', 'vg0', 'data')))
    doc = yaml.safe_load(prune.RETURN)
    assert set(res) - {'changed'} == set(doc)
    fields = doc['volumes']['contains']
    assert [set(v) for v in res['volumes']] == [set(fields) - {'msg'}] * 2 + [set(fields)]
    for key in ('kept', 'skipped', 'misplaced', 'unreadable'):
        items = [item for v in res['volumes'] for item in v[key]]
        assert items and all(set(item) == set(fields[key]['contains']) for item in items), key
    assert set(res['summary']) == set(doc['summary']['contains'])


def test_the_module_imports_without_lxml_paramiko_or_lvm_commands():
    loaded = module_utils_loaded('from ansible_collections.lvdiff.thin.plugins.modules import prune')
    assert set(['_repository', '_retention', '_batch']) <= loaded
    assert not loaded & set(['_thinmeta', '_lvm', '_command', '_transfer', '_backup', '_restore'])

"""rotate: files removed and directories swept for real in tmp dirs (symlink traps included); volumes
removed on the scripted LVM host of test_restore (tag checks, one lvremove per VG, the fallback)."""

import os

import pytest

from ansible_collections.lvdiff.thin.plugins.module_utils._errors import CommandError
from ansible_collections.lvdiff.thin.plugins.modules import rotate

from ansible_collections.lvdiff.thin.tests.support.lvmhost import lvm_host

TAG = 'lvdiff_rep_replica'


@pytest.fixture
def host(tmp_path, monkeypatch):
    host = lvm_host(tmp_path, monkeypatch, vgs=('vg', 'vg2'))
    monkeypatch.setattr(rotate, 'Runner', lambda module: host)
    for vg, name, tags in (('vg', 'a', [TAG]), ('vg', 'b', [TAG, 'x']), ('vg', 'mine', []), ('vg2', 'c', [TAG])):
        host.add(vg, name, b'x' * 4096, tags=tags)
    host.calls = []
    return host


def item(vg, lv, tag=TAG):
    return {'vg': vg, 'lv': lv, 'tag': tag}


# --- volumes ------------------------------------------------------------------------------------------------

def test_only_tagged_volumes_are_removed_one_lvremove_per_vg(host, run_module):
    items = [item('vg', 'a'), item('vg', 'mine'), item('vg2', 'c'), item('vg', 'b'), item('vg', 'gone'),
             item('vgx', 'z')]
    rc, res = run_module(rotate, {'remove': items})
    assert rc == 0 and res['changed'] is True
    assert res['removed'] == ['vg/a', 'vg2/c', 'vg/b']
    assert [(r['vg'], r['lv'], r['removed'], r['failed']) for r in res['remove']] == [
        ('vg', 'a', True, False), ('vg', 'mine', False, True), ('vg2', 'c', True, False), ('vg', 'b', True, False),
        ('vg', 'gone', False, False), ('vgx', 'z', False, True)]
    assert res['remove'][1]['msg'] == 'vg/mine not removed: it has no tag lvdiff_rep_replica'
    assert res['remove'][5]['msg'] == 'volume group vgx does not exist on this host'
    assert host.changes() == [['lvremove', '--yes', '--force', 'vg/a', 'vg/b'],
                              ['lvremove', '--yes', '--force', 'vg2/c']]
    assert sorted(host.vgs['vg']) == ['mine', 'pool'] and sorted(host.vgs['vg2']) == ['pool']
    # checked against one lvs (report's one per VG after it, as vgx is missing), none after the lvremoves
    assert host.calls[0][0] == 'lvs' and host.calls[0][-3:] == ['vg', 'vg2', 'vgx']
    assert [c[0] for c in host.calls[-2:]] == ['lvremove', 'lvremove']
    rc, res = run_module(rotate, {'remove': items[:1]})
    assert rc == 0 and res['changed'] is False and res['removed'] == []


def test_a_failed_lvremove_is_retried_per_volume_to_say_which(host, run_module):
    # lvm2 removes what it can and fails for a volume in use: the retry finds vg/a gone, vg/b failing.
    answer = host.run

    def run(argv, check=True, data=None):
        if argv[0] == 'lvremove' and 'vg/b' in argv:
            host.calls.append(list(argv))
            host._lvremove([t for t in argv[1:] if t != 'vg/b'])
            raise CommandError('lvremove failed (rc=5): Logical volume vg/b in use.')
        return answer(argv, check, data)

    host.run = run
    rc, res = run_module(rotate, {'remove': [item('vg', 'a'), item('vg', 'b')]})
    assert rc == 0
    assert [(r['removed'], r['failed']) for r in res['remove']] == [(True, False), (False, True)]
    assert res['remove'][1]['msg'] == 'lvremove failed (rc=5): Logical volume vg/b in use.'
    assert res['removed'] == ['vg/a'] and sorted(host.vgs['vg']) == ['b', 'mine', 'pool']
    assert host.changes() == [['lvremove', '--yes', '--force', 'vg/a', 'vg/b'],
                              ['lvremove', '--yes', '--force', 'vg/b']]


def test_check_mode_removes_no_volume(host, run_module):
    rc, res = run_module(rotate, {'remove': [item('vg', 'a'), item('vg', 'mine')]}, check_mode=True)
    assert rc == 0 and res['changed'] is True and res['removed'] == ['vg/a'] and res['remove'][1]['failed']
    assert host.changes() == [] and 'a' in host.vgs['vg']


@pytest.mark.parametrize('bad,msg', [
    (item('vg', '-a'), "volume '-a' is not a valid LVM name"),
    (item('vg', 'a', tag='-t'), "'-t' is not a valid LVM tag"),
])
def test_bad_items_fail_the_run_before_anything(host, run_module, bad, msg):
    rc, res = run_module(rotate, {'remove': [item('vg', 'a'), bad]})
    assert rc == 1 and res['msg'].startswith(msg) and host.calls == []


def test_no_volumes_no_lvs(host, run_module, tmp_path):
    rc, res = run_module(rotate, {'files': [str(tmp_path / 'nothing')]})
    assert rc == 0 and res['changed'] is False and host.calls == []


# --- files --------------------------------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path):
    """tmp_path/d with partial transfers, a diff, other files, a subdirectory and symlinks to files outside."""
    d = tmp_path / 'd'
    out = tmp_path / 'outside'
    d.mkdir()
    out.mkdir()
    for name in ('a.lvdiff.part', 'a.lvdiff.part.sha1', 'a.lvdiff', 'notes.txt', 'a.lvdiff.partial'):
        (d / name).write_text('x')
    (d / 'sub.lvdiff.part').mkdir()
    (d / 'sub.lvdiff.part' / 'deep.lvdiff.part').write_text('x')
    (out / 'victim.lvdiff.part').write_text('victim')
    os.symlink(str(out / 'victim.lvdiff.part'), str(d / 'link.lvdiff.part'))
    os.symlink(str(out / 'victim.lvdiff.part'), str(d / 'link.lvdiff'))
    os.symlink(str(out), str(tmp_path / 'dirlink'))
    return tmp_path


def listing(path):
    return sorted(os.listdir(str(path)))


def test_files_regular_ones_removed_symlinks_and_directories_refused(tree, run_module, host):
    d = tree / 'd'
    files = [str(d / 'a.lvdiff'), str(d / 'link.lvdiff'), str(d / 'missing.lvdiff'), str(d / 'sub.lvdiff.part')]
    rc, res = run_module(rotate, {'files': files}, check_mode=True)
    assert rc == 0 and res['changed'] is True and res['files_removed'] == [files[0]]
    assert 'a.lvdiff' in listing(d)
    rc, res = run_module(rotate, {'files': files})
    assert rc == 0 and res['changed'] is True and res['files_removed'] == [files[0]]
    assert [(r['path'], r['removed'] if 'removed' in r else None, r['failed']) for r in res['files']] == [
        (files[0], True, False), (files[1], None, True), (files[2], False, False), (files[3], None, True)]
    assert res['files'][1]['msg'] == 'not removed: %s is not a regular file (a symlink)' % files[1]
    assert res['files'][3]['msg'] == 'not removed: %s is not a regular file (a directory)' % files[3]
    assert 'a.lvdiff' not in listing(d) and 'link.lvdiff' in listing(d)
    assert (tree / 'outside' / 'victim.lvdiff.part').read_text() == 'victim'


def test_sweep_partials_only_directly_inside_never_through_symlinks(tree, run_module, host):
    d = str(tree / 'd')
    sweep = [d, str(tree / 'dirlink'), str(tree / 'missing')]
    rc, res = run_module(rotate, {'sweep': sweep}, check_mode=True)
    assert rc == 0 and res['files_removed'] == [d + '/a.lvdiff.part', d + '/a.lvdiff.part.sha1']
    assert len(listing(d)) == 8
    rc, res = run_module(rotate, {'sweep': sweep})
    assert rc == 0 and res['changed'] is True
    assert res['files_removed'] == [d + '/a.lvdiff.part', d + '/a.lvdiff.part.sha1']
    assert [r['failed'] for r in res['sweep']] == [False, True, False]
    assert res['sweep'][1]['msg'].startswith('not swept: cannot open directory %s/dirlink: ' % tree)
    assert res['sweep'][1]['msg'].endswith('(a symlink is refused)')
    assert res['sweep'][2]['removed'] == []
    assert listing(d) == ['a.lvdiff', 'a.lvdiff.partial', 'link.lvdiff', 'link.lvdiff.part', 'notes.txt',
                          'sub.lvdiff.part']
    assert listing(tree / 'd' / 'sub.lvdiff.part') == ['deep.lvdiff.part']
    assert listing(tree / 'outside') == ['victim.lvdiff.part']
    rc, res = run_module(rotate, {'sweep': sweep})
    assert res['changed'] is False


def test_sweep_diffs_too(tree, run_module, host):
    d = str(tree / 'd')
    rc, res = run_module(rotate, {'sweep': [d], 'sweep_diffs': True})
    assert res['files_removed'] == [d + '/a.lvdiff', d + '/a.lvdiff.part', d + '/a.lvdiff.part.sha1']
    assert 'link.lvdiff' in listing(d)

"""_lvm: the argv given to LVM, every name, tag and size checked at that boundary, and lvs's
failures told apart. LVM cannot run here (no device-mapper); its answers are scripted, with the
real wording of its messages (error paths of external commands)."""

import json

import pytest

from ansible_collections.lvdiff.thin.plugins.module_utils import _lvm
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import CommandError, LvdiffError

ROW = {'lv_name': 'data', 'vg_name': 'vg0', 'pool_lv': 'pool', 'thin_id': '3', 'lv_uuid': 'U-1',
       'lv_size': '1073741824', 'chunk_size': '65536', 'lv_attr': 'Vwi-a-tz--', 'lv_tags': 'a,b',
       'lv_path': '/dev/vg0/data', 'transaction_id': '', 'data_percent': '12.50', 'discards': '',
       'vg_extent_size': '4194304'}
POOL = dict(ROW, lv_name='pool', pool_lv='', thin_id='', lv_attr='twi-aotz--', lv_tags='', transaction_id='7')


class ScriptedLvm:
    """Records argv; answers lvs with rows or a failure."""

    def __init__(self, rows=(ROW, POOL), rc=0, err='', out=None):
        self.calls = []
        self.rc, self.err = rc, err
        self.out = out if out is not None else json.dumps({'report': [{'lv': list(rows)}]})

    def run(self, argv, check=True, data=None):
        self.calls.append(list(argv))
        if argv[0] == 'lvs':
            return self.rc, self.out, self.err
        return 0, '', ''


def lvm(**kw):
    r = ScriptedLvm(**kw)
    return _lvm.Lvm(r), r


def test_lvs_argv_and_rows():
    m, r = lvm()
    lvs = m.lvs('vg0')
    assert r.calls == [['lvs', '-a', '--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', _lvm._FIELDS,
                        'vg0']]
    lv = lvs['data']
    assert (lv.vg, lv.pool, lv.thin_id, lv.size, lv.is_thin, lv.active, lv.tags) == (
        'vg0', 'pool', 3, 1 << 30, True, True, ['a', 'b'])
    assert lvs['pool'].is_pool and lvs['pool'].transaction_id == 7


def test_missing_volume_group():
    m, r = lvm(rc=5, err='  Volume group "vgnope" not found\n  Cannot process volume group vgnope\n')
    with pytest.raises(LvdiffError, match='^volume group vgnope does not exist on this host$'):
        m.lvs('vgnope')


# lvm2 2.03.31 (Debian 13) with --reportformat json: errors go to the report's command log on
# stdout, stderr stays empty. Output as seen in the trixie test guest (`lvs ... vgnope`, rc 5).
def log_entry(seq, kind, name, message, ret='0'):
    return {'log_seq_num': str(seq), 'log_type': kind, 'log_context': 'processing', 'log_object_type': 'vg',
            'log_object_name': name, 'log_object_id': '', 'log_object_group': '', 'log_object_group_id': '',
            'log_message': message, 'log_errno': '-1', 'log_ret_code': ret}


def json_log_report(rows, *entries):
    return json.dumps({'report': [{'lv': list(rows)}], 'log': list(entries)}, indent=4)


NOT_FOUND_LOG = (log_entry(1, 'error', 'vgnope', 'Volume group "vgnope" not found'),
                 log_entry(2, 'error', 'vgnope', 'Cannot process volume group vgnope'),
                 log_entry(3, 'status', 'vgnope', 'failure', ret='5'))


def test_missing_volume_group_told_in_the_json_command_log():
    m, r = lvm(rc=5, err='', out=json_log_report([], *NOT_FOUND_LOG))
    with pytest.raises(LvdiffError, match='^volume group vgnope does not exist on this host$') as info:
        m.lvs('vgnope')
    assert not isinstance(info.value, CommandError)
    assert info.value.details['stderr'] == 'Volume group "vgnope" not found\n  Cannot process volume group vgnope'


def test_other_failure_in_the_json_command_log_keeps_its_words():
    out = json_log_report([], log_entry(1, 'error', 'vg0', "Can't get lock for vg0"),
                          log_entry(2, 'error', 'vg0', 'Cannot process volume group vg0'),
                          log_entry(3, 'status', 'vg0', 'failure', ret='5'))
    m, r = lvm(rc=5, err='', out=out)
    with pytest.raises(CommandError) as info:
        m.lvs('vg0')
    assert info.value.msg == ("lvs failed for volume group vg0: Can't get lock for vg0\n"
                              "  Cannot process volume group vg0")
    assert info.value.details['rc'] == 5


@pytest.mark.parametrize('out, err, said', [
    ('', '  Volume group "vg0" not found\n', 'Volume group "vg0" not found'),  # 2.03.16: stderr only
    (json_log_report([], *NOT_FOUND_LOG), '  WARNING: something\n',
     'WARNING: something\n  Volume group "vgnope" not found\n  Cannot process volume group vgnope'),
    # a status line, a success, or anything that is not a log of error entries says nothing
    (json_log_report([], log_entry(1, 'status', 'vg0', 'success')), '', ''),
    ('not json', '', ''), ('[]', '', ''), ('{"log": "Volume group \\"vg0\\" not found"}', '', ''),
    ('{"log": [["error"], {"log_type": "error", "log_message": 5}, {"log_type": "error"}]}', '', ''),
])
def test_failure_text(out, err, said):
    assert _lvm.failure_text(out, err) == said


def test_a_log_entry_naming_another_vg_is_not_this_vg_missing():
    m, r = lvm(rc=5, err='', out=json_log_report([], log_entry(1, 'error', 'vg01', 'Volume group "vg01" not found')))
    with pytest.raises(CommandError):
        m.lvs('vg0')


@pytest.mark.parametrize('err', [
    # other failures that mention a volume group, or something not found, keep lvs's words
    '  Volume group "vg0" is exported\n',
    '  WARNING: Couldn\'t find device with uuid abc.\n  WARNING: VG vg0 is missing PV abc (last written to '
    '/dev/sdb).\n  Volume group "vg0" not found or inconsistent.\n',
    '  /run/lock/lvm/V_vg0:aux: open failed: Permission denied\n  Can\'t get lock for vg0\n'
    '  Cannot process volume group vg0\n',
    '  Volume group "vg01" not found\n',  # another VG's name
])
def test_other_lvs_failures_keep_stderr(err):
    m, r = lvm(rc=5, err=err)
    with pytest.raises(CommandError) as info:
        m.lvs('vg0')
    assert 'does not exist' not in info.value.msg
    assert info.value.msg == 'lvs failed for volume group vg0: %s' % err.strip()
    assert info.value.details['stderr'] == err and info.value.details['rc'] == 5


@pytest.mark.parametrize('out', [
    'not json', '{}', '{"report": []}', '{"report": [{"lv": [{"lv_name": "x"}]}]}',
    json.dumps({'report': [{'lv': [dict(ROW, lv_size='12x')]}]}),
    json.dumps({'report': [{'lv': [dict(ROW, lv_attr='V')]}]}),
    json.dumps({'report': [{'lv': [dict(ROW, thin_id='3.5')]}]}),
    json.dumps({'report': [{'lv': None}]}),
])
def test_unreadable_lvs_output(out):
    m, r = lvm(out=out)
    with pytest.raises(CommandError, match='^cannot read the output of lvs: '):
        m.lvs('vg0')


BAD_NAMES = ['', '-vg', '--help', '-', 'a/b', '../x', 'x\n', 'a b', '.', '..', 'a' * 128, None, 3, 'ä']


def every_call(m, vg='vg0', name='data', size=4096, tag='lvdiff_sha1:ab'):
    """Each changing method of Lvm, with one argument replaced."""
    lv = _lvm.LV(dict(ROW, vg_name=vg, lv_name=name))
    return [
        lambda: m.snapshot(vg, name, name, tags=[tag]),
        lambda: m.create_thin(vg, name, name, size, tags=[tag]),
        lambda: m.resize(vg, name, size),
        lambda: m.rename(vg, name, name),
        lambda: m.change(vg, name, add=[tag], remove=[tag]),
        lambda: m.remove(vg, name),
        lambda: m.activate(lv),
        lambda: m.deactivate(lv),
    ]


def test_argv_of_every_change():
    m, r = lvm()
    for call in every_call(m):
        call()
    assert r.calls == [
        ['lvcreate', '--snapshot', '--setactivationskip', 'n', '--name', 'data', '--addtag', 'lvdiff_sha1:ab',
         'vg0/data'],
        ['lvcreate', '--thin', '--virtualsize', '4096b', '--name', 'data', '--addtag', 'lvdiff_sha1:ab',
         'vg0/data'],
        ['lvresize', '--yes', '--force', '--size', '4096b', 'vg0/data'],
        ['lvrename', 'vg0', 'data', 'data'],
        ['lvchange', '--addtag', 'lvdiff_sha1:ab', '--deltag', 'lvdiff_sha1:ab', 'vg0/data'],
        ['lvremove', '--yes', '--force', 'vg0/data'],
        ['lvchange', '--activate', 'y', '--ignoreactivationskip', 'vg0/data'],
        ['lvchange', '--activate', 'n', 'vg0/data'],
    ]


@pytest.mark.parametrize('bad', BAD_NAMES)
@pytest.mark.parametrize('where', ['vg', 'name'])
def test_bad_names_never_reach_lvm(bad, where):
    m, r = lvm()
    for i, call in enumerate(every_call(m, **{where: bad})):
        with pytest.raises(LvdiffError, match='is not a valid LVM name'):
            call()
    assert r.calls == []
    with pytest.raises(LvdiffError, match='is not a valid LVM name'):
        m.lvs(bad) if where == 'vg' else m.thin('vg0', bad)
    assert r.calls == []


@pytest.mark.parametrize('size', [-4096, -1, 0, 4096.0, 4096.5, True, '4096', None, 1 << 63])
def test_sizes_that_are_not_positive_integers_never_reach_lvm(size):
    """'--size -4096b' would be a relative shrink (the audit's negative volume.size)."""
    m, r = lvm()
    for call in every_call(m, size=size)[1:3]:
        with pytest.raises(LvdiffError, match='refusing volume size .*not a positive whole number of bytes'):
            call()
    assert r.calls == []


def test_largest_size_passes():
    m, r = lvm()
    m.resize('vg0', 'data', (1 << 63) - 1)
    assert r.calls[0][4] == '%db' % ((1 << 63) - 1)


@pytest.mark.parametrize('tag', ['', '-x', 'lvdiff_origin:a b', 'lvdiff_sha1:ab\n', 'x' * 1025, 'a;b', 'a"b', None])
def test_bad_tags_never_reach_lvm(tag):
    m, r = lvm()
    for i in (0, 1, 4):
        with pytest.raises(LvdiffError, match='is not a valid LVM tag'):
            every_call(m, tag=tag)[i]()
    assert r.calls == []


def test_thin_and_pool_lookups():
    m, r = lvm()
    assert m.thin('vg0', 'data').thin_id == 3
    assert m.pool_of(m.thin('vg0', 'data')).name == 'pool'
    with pytest.raises(LvdiffError, match='volume vg0/nope does not exist'):
        m.thin('vg0', 'nope')
    with pytest.raises(LvdiffError, match='is not a thin volume'):
        m.thin('vg0', 'pool')
    with pytest.raises(LvdiffError, match='thin pool vg0/data does not exist'):
        m.pool('vg0', 'data')


def test_read_only_snapshot_argv():
    """A backup's snapshot: read-only, LVM's default activation skip kept (no --setactivationskip)."""
    m, r = lvm()
    m.snapshot('vg0', 'data', 'data-snap', tags=['lvdiff_origin:x'], read_only=True)
    assert r.calls == [['lvcreate', '--snapshot', '--permission', 'r', '--name', 'data-snap',
                        '--addtag', 'lvdiff_origin:x', 'vg0/data']]


def test_pool_of_a_volume_whose_pool_is_gone():
    m, r = lvm(rows=(ROW,))
    with pytest.raises(LvdiffError, match='^thin pool vg0/pool of data not found$'):
        m.pool_of(m.thin('vg0', 'data'))


def test_active_activates_only_inactive_volumes_and_restores_them_on_failure():
    m, r = lvm()
    on = _lvm.LV(ROW)
    off = _lvm.LV(dict(ROW, lv_name='snap', lv_attr='Vri---tz-k'))
    off2 = _lvm.LV(dict(ROW, lv_name='base', lv_attr='Vri---tz-k'))
    with pytest.raises(RuntimeError, match='inside'):
        with m.active(on, off, None, off, off2):
            assert len(r.calls) == 2
            raise RuntimeError('inside')
    assert r.calls == [['lvchange', '--activate', 'y', '--ignoreactivationskip', 'vg0/snap'],
                       ['lvchange', '--activate', 'y', '--ignoreactivationskip', 'vg0/base'],
                       ['lvchange', '--activate', 'n', 'vg0/base'],
                       ['lvchange', '--activate', 'n', 'vg0/snap']]


def test_name_too_long_for_device_mapper():
    assert _lvm.dm_name('vg-a', 'b-c') == 'vg--a-b--c'
    with pytest.raises(LvdiffError, match=r'device-mapper name VG-NAME with each - doubled at most 127 \(it has 128\)'):
        _lvm.check_name_length('vg', 'x' + '-' * 62)


# --- report: several VGs with one lvs ------------------------------------------------------------

NOT_FOUND = '  Volume group "%s" not found\n  Cannot process volume group %s\n'


class ScriptedReport:
    """lvs over several VGs as LVM answers it: one missing VG fails the whole command (rc 5),
    after printing the others; each VG alone answers for itself. vgs: {vg: rows, or stderr of a failure}."""

    def __init__(self, vgs):
        self.vgs = vgs
        self.calls = []

    def run(self, argv, check=True, data=None):
        self.calls.append(list(argv))
        asked = argv[argv.index(_lvm._FIELDS) + 1:]
        rows, err = [], ''
        for vg in asked:
            known = self.vgs.get(vg, NOT_FOUND % (vg, vg))
            if isinstance(known, str):
                err += known
            else:
                rows += [dict(row, vg_name=vg) for row in known]
        return (5 if err else 0), json.dumps({'report': [{'lv': rows}]}), err


def test_report_reads_several_vgs_with_one_lvs():
    r = ScriptedReport({'vg0': [ROW, POOL], 'vg1': [dict(ROW, lv_name='other')], 'vg2': []})
    found = _lvm.Lvm(r).report(['vg1', 'vg0', 'vg1', 'vg2'])
    assert r.calls == [['lvs', '-a', '--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', _lvm._FIELDS,
                        'vg0', 'vg1', 'vg2']]
    assert {vg: sorted(lvs) for vg, lvs in found.items()} == {'vg0': ['data', 'pool'], 'vg1': ['other'], 'vg2': []}
    assert found['vg1']['other'].vg == 'vg1' and found['vg0']['pool'].is_pool


def test_report_of_no_vg_runs_nothing():
    r = ScriptedReport({})
    assert _lvm.Lvm(r).report([]) == {} and r.calls == []


def test_report_leaves_out_a_missing_vg_after_one_lvs_each():
    r = ScriptedReport({'vg0': [ROW, POOL], 'vg1': [POOL]})
    found = _lvm.Lvm(r).report(['vg0', 'gone', 'vg1'])
    assert sorted(found) == ['vg0', 'vg1'] and sorted(found['vg1']) == ['pool']
    assert [c[9:] for c in r.calls] == [['gone', 'vg0', 'vg1'], ['gone'], ['vg0'], ['vg1']]


class ScriptedJsonLogReport(ScriptedReport):
    """The same, as lvm2 2.03.31 answers: the errors in the report's command log, stderr empty."""

    def run(self, argv, check=True, data=None):
        rc, out, err = super().run(argv, check, data)
        entries = [log_entry(i, 'error', '', line.strip()) for i, line in enumerate(err.splitlines(), 1)]
        return rc, json_log_report(json.loads(out)['report'][0]['lv'], *entries), ''


def test_report_leaves_out_a_missing_vg_told_in_the_json_command_log():
    r = ScriptedJsonLogReport({'vg0': [ROW, POOL], 'vg1': [POOL]})
    found = _lvm.Lvm(r).report(['vg0', 'gone', 'vg1'])
    assert sorted(found) == ['vg0', 'vg1'] and sorted(found['vg1']) == ['pool']


def test_report_raises_any_other_failure_told_in_the_json_command_log():
    r = ScriptedJsonLogReport({'vg0': [ROW], 'vg1': '  Can\'t get lock for vg1\n'})
    with pytest.raises(CommandError, match="^lvs failed for volume group vg1: Can't get lock for vg1$"):
        _lvm.Lvm(r).report(['vg0', 'vg1', 'gone'])


def test_report_raises_any_other_failure_of_a_vg():
    locked = '  Can\'t get lock for vg1\n  Cannot process volume group vg1\n'
    r = ScriptedReport({'vg0': [ROW], 'vg1': locked})
    with pytest.raises(CommandError) as info:
        _lvm.Lvm(r).report(['vg0', 'vg1', 'gone'])
    assert info.value.msg == 'lvs failed for volume group vg1: %s' % locked.strip()
    assert info.value.details['rc'] == 5


def test_report_with_unreadable_output():
    class Garbage(ScriptedReport):
        def run(self, argv, check=True, data=None):
            super().run(argv)
            return 0, '{"report": [{"lv": [{"lv_name": "x"}]}]}', ''
    with pytest.raises(CommandError, match='^cannot read the output of lvs: KeyError'):
        _lvm.Lvm(Garbage({})).report(['vg0', 'vg1'])


@pytest.mark.parametrize('bad', BAD_NAMES)
def test_report_refuses_bad_vg_names_before_lvs(bad):
    r = ScriptedReport({'vg0': [ROW]})
    with pytest.raises(LvdiffError, match='is not a valid LVM name'):
        _lvm.Lvm(r).report(['vg0', bad])
    assert r.calls == []

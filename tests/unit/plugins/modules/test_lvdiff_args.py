"""The lvdiff module's arguments, as Ansible passes them: refusals by the argument spec and by the
module's own checks, each with its message, before anything is reserved, activated or written.

LVM cannot run here: lvs (and any other LVM or dmsetup command, which these runs must never reach) is
answered by a script with LVM's own wording; the thin tools are the real ones."""

import json
import os
import re

import pytest

from ansible_collections.lvdiff.thin.plugins.module_utils import _command, _thinmeta
from ansible_collections.lvdiff.thin.plugins.modules import lvdiff
from ansible_collections.lvdiff.thin.tests.support.argspec import as_written_by_2_19, not_one_of, wrong_type

ROW = {'vg_name': 'vg', 'pool_lv': 'pool', 'lv_size': '1048576', 'chunk_size': '65536', 'lv_tags': '',
       'lv_path': '', 'transaction_id': '', 'data_percent': '', 'vg_extent_size': '4194304'}
LVS = [
    dict(ROW, lv_name='pool', pool_lv='', thin_id='', lv_uuid='U-pool', lv_attr='twi-aotz--', transaction_id='4'),
    dict(ROW, lv_name='pool2', pool_lv='', thin_id='', lv_uuid='U-pool2', lv_attr='twi-aotz--'),
    dict(ROW, lv_name='base', thin_id='1', lv_uuid='U-base', lv_attr='Vri---tz-k'),
    dict(ROW, lv_name='snap', thin_id='2', lv_uuid='U-snap', lv_attr='Vri---tz-k'),
    dict(ROW, lv_name='other', pool_lv='pool2', thin_id='1', lv_uuid='U-other', lv_attr='Vri---tz-k'),
    dict(ROW, lv_name='plain', pool_lv='', thin_id='', lv_uuid='U-plain', lv_attr='-wi-a-----'),
]


class ScriptedLvm(_command.Runner):
    """The module's Runner: lvs of VG 'vg' answered from LVS, any other VG missing as LVM says it; every
    other LVM command refused (these runs must stop before one); the thin tools run for real."""

    calls = []

    def run(self, argv, check=True, data=None):
        self.calls.append(list(argv))
        if argv[0] == 'lvs':
            vg = argv[-1]
            if vg != 'vg':
                return 5, '', '  Volume group "%s" not found\n  Cannot process volume group %s\n' % (vg, vg)
            return 0, json.dumps({'report': [{'lv': LVS}]}), ''
        assert argv[0].startswith('thin_'), 'ran %r' % (argv,)
        return super().run(argv, check, data)


@pytest.fixture
def lvm(monkeypatch):
    monkeypatch.setattr(ScriptedLvm, 'calls', [])
    monkeypatch.setattr(lvdiff, 'Runner', ScriptedLvm)
    return ScriptedLvm.calls


@pytest.fixture
def out(tmp_path):
    d = tmp_path / 'out'
    d.mkdir()
    return d


def args(out, **kw):
    return dict({'vg': 'vg', 'lv': 'snap', 'base': 'base', 'dest': str(out / 'd.lvdiff')}, **kw)


def failed(run_module, given, check_mode=False):
    rc, res = run_module(lvdiff, given, check_mode=check_mode)
    assert rc == 1 and res['failed'] is True and not res.get('changed'), res
    return res['msg']


def commands(calls):
    return [c[0] for c in calls]


# --- the argument spec: refused before the module runs anything ---------------------------------------


@pytest.mark.parametrize('given,msg', [
    ({}, 'missing required arguments: dest, lv, vg'),
    ({'vg': 'vg', 'lv': 'snap'}, 'missing required arguments: dest'),
    ({'lv': 'snap', 'dest': '/x'}, 'missing required arguments: vg'),
    ({'vg': 'vg', 'lv': 'snap', 'dest': '/x', 'checksum_level': 4},
     not_one_of('checksum_level', ['0', '1', '2', '3'], '4')),
    ({'vg': 'vg', 'lv': 'snap', 'dest': '/x', 'checksum_level': 'all'},
     wrong_type('checksum_level', 'str', 'int')),
    ({'vg': 'vg', 'lv': 'snap', 'dest': '/x', 'format': 'qcow2'},
     not_one_of('format', ['lvdiff', 'hyperlayer'], 'qcow2')),
    ({'vg': 'vg', 'lv': 'snap', 'dest': '/x', 'force': 'perhaps'},
     wrong_type('force', 'str', 'bool')),
    ({'vg': 'vg', 'lv': 'snap', 'dest': '/x', 'pairs': ['a', 'b']},
     wrong_type('pairs', 'list', 'dict')),
    ({'vg': 'vg', 'lv': 'snap', 'dest': '/x', 'src': '/y'}, 'Unsupported parameters for (basic.py) module: src'),
])
def test_spec_refusals_run_nothing(lvm, run_module, given, msg):
    assert msg in as_written_by_2_19(failed(run_module, given))
    assert lvm == []


# --- the module's own checks: LVM is read, nothing reserved, activated or written --------------------


@pytest.mark.parametrize('kw,msg', [
    ({'lv': 'nope'}, '^volume vg/nope does not exist$'),
    ({'base': 'nope'}, '^base volume vg/nope does not exist$'),
    ({'vg': 'vgx'}, '^volume group vgx does not exist on this host$'),
    ({'lv': 'plain'}, r'^volume vg/plain is not a thin volume \(lv_attr -wi-a-----\)$'),
    ({'base': 'pool'}, r'^base volume vg/pool is not a thin volume'),
    ({'base': 'snap'}, '^lv and base are the same volume$'),
    ({'base': 'other'}, r'^snap and its base other are in different thin pools \(pool, pool2\); thin_delta compares '
                        'volumes of one pool only$'),
    ({'base': None, 'format': 'hyperlayer'},
     '^format hyperlayer cannot hold a full image: give a base, or use format lvdiff$'),
    ({'pairs': {'host': {'name': 'web1'}}}, "^pairs must map text to text; 'host' holds a dict$"),
    ({'pairs': {'hosts': ['a', 'b']}}, "^pairs must map text to text; 'hosts' holds a list$"),
])
@pytest.mark.parametrize('check_mode', [False, True])
def test_volumes_and_options_refused_after_lvs_only(lvm, run_module, out, kw, msg, check_mode):
    got = failed(run_module, args(out, **kw), check_mode=check_mode)
    assert re.search(msg, got), got
    assert set(commands(lvm)) <= {'thin_delta', 'lvs'} and lvm[0] == ['thin_delta', '--version']
    assert os.listdir(out) == []


@pytest.mark.parametrize('where', ['vg', 'lv', 'base'])
@pytest.mark.parametrize('bad', ['-x', '--help', 'a/b', '..', 'a b', 'x\ny'])
def test_bad_lvm_names_never_reach_lvs(lvm, run_module, out, where, bad):
    assert 'is not a valid LVM name' in failed(run_module, args(out, **{where: bad}))
    assert 'lvs' not in commands(lvm) or where == 'base'  # lv and vg are looked up first
    assert not any(bad in word for c in lvm for word in c)


def test_dest_that_is_a_directory(lvm, run_module, out):
    (out / 'd').mkdir()
    assert failed(run_module, args(out, dest=str(out / 'd'))) == 'dest %s is a directory; give a file path' % (
        out / 'd')
    assert os.listdir(out / 'd') == [] and set(commands(lvm)) <= {'thin_delta', 'lvs'}


@pytest.mark.parametrize('check_mode', [False, True])
def test_dest_in_a_missing_directory(lvm, run_module, out, check_mode):
    dest = str(out / 'missing' / 'd.lvdiff')
    assert failed(run_module, args(out, dest=dest), check_mode) == 'the directory of dest %s does not exist' % dest
    assert os.listdir(out) == [] and set(commands(lvm)) <= {'thin_delta', 'lvs'}


def test_dest_relative_to_home_is_expanded(lvm, run_module, out, monkeypatch):
    """type path: ~ is the user's home, as Ansible documents (checked here by its error naming the path)."""
    monkeypatch.setenv('HOME', str(out))
    assert failed(run_module, args(out, dest='~/missing/d.lvdiff')) == (
        'the directory of dest %s/missing/d.lvdiff does not exist' % out)


def test_without_lxml_the_module_says_which_library(lvm, run_module, out, monkeypatch):
    monkeypatch.setattr(_thinmeta, 'HAS_LXML', False)
    assert failed(run_module, args(out)).startswith('Failed to import the required Python library (lxml)')
    assert lvm == []


def test_old_thin_tools_are_refused_first(lvm, run_module, out, monkeypatch):
    monkeypatch.setattr(_thinmeta, 'parse_version', lambda text: (0, 7, 0))
    msg = failed(run_module, args(out))
    assert 'thin-provisioning-tools' in msg and '0.7' in msg, msg
    assert commands(lvm) == ['thin_delta']

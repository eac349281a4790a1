"""The transfer module's arguments, as Ansible passes them: refusals by the argument spec, by the
module's own checks, and which options reach which connection in direct and relay mode.

No sshd here: SSHEndpoint is replaced by one that records its options and runs the real receiver
script (and the relay source's commands) with sh on this machine (tests/support/shell.py)."""

import hashlib
import os

import pytest

from ansible_collections.lvdiff.thin.plugins.module_utils import _transfer
from ansible_collections.lvdiff.thin.plugins.modules import transfer

from ansible_collections.lvdiff.thin.tests.support.shell import ShellEndpoint
from ansible_collections.lvdiff.thin.tests.support.argspec import as_written_by_2_19, wrong_type

DATA = b'diff file bytes\n' * 5000
SHA1 = hashlib.sha1(DATA).hexdigest()


class RecordedSSH(ShellEndpoint):
    """SSHEndpoint's signature; every connection made is kept in `made`, with its options."""

    made = []

    def __init__(self, host, port=22, user='root', key_file=None, host_key_checking=True, timeout=30,
                 io_timeout=600):
        super().__init__()
        self.options = dict(host=host, port=port, user=user, key_file=key_file,
                            host_key_checking=host_key_checking, timeout=timeout, io_timeout=io_timeout)
        self.closed = False
        self.made.append(self)

    def close(self):
        self.closed = True


@pytest.fixture
def ssh(monkeypatch):
    monkeypatch.setattr(RecordedSSH, 'made', [])
    monkeypatch.setattr(_transfer, 'SSHEndpoint', RecordedSSH)
    # paramiko is needed by the real SSHEndpoint only (ansible-test's unit venv lacks it).
    monkeypatch.setattr(_transfer, 'HAS_PARAMIKO', True)
    return RecordedSSH.made


@pytest.fixture
def files(tmp_path):
    src = tmp_path / 'src' / 'd.lvdiff'
    src.parent.mkdir()
    src.write_bytes(DATA)
    dest = tmp_path / 'dst' / 'in' / 'd.lvdiff'
    return str(src), str(dest)


def args(files, **kw):
    src, dest = files
    return dict({'src': src, 'dest': dest, 'host': 'backup'}, **kw)


def nothing_written(files):
    dest_dir = os.path.dirname(files[1])
    return not os.path.exists(dest_dir) or os.listdir(dest_dir) == []


# --- the argument spec -------------------------------------------------------------------------------


@pytest.mark.parametrize('given,msg', [
    ({}, 'missing required arguments: host'),
    ({'host': 'h'}, 'one of the following is required: src, files'),
    ({'src': '/a', 'dest': '/b'}, 'missing required arguments: host'),
    ({'src': '/a', 'dest': '/b', 'host': 'h', 'port': 'ssh'},
     wrong_type('port', 'str', 'int')),
    ({'src': '/a', 'dest': '/b', 'host': 'h', 'io_timeout': '1m'},
     wrong_type('io_timeout', 'str', 'int')),
    ({'src': '/a', 'dest': '/b', 'host': 'h', 'host_key_checking': 'sometimes'},
     wrong_type('host_key_checking', 'str', 'bool')),
    ({'src': '/a', 'dest': '/b', 'host': 'h', 'src_path': '/c'}, 'Unsupported parameters for (basic.py) module: '
                                                                 'src_path'),
])
def test_spec_refusals_connect_nowhere(ssh, run_module, given, msg):
    rc, res = run_module(transfer, given)
    assert rc == 1 and res['failed'] and msg in as_written_by_2_19(res['msg']), res
    assert ssh == []


def test_without_paramiko_the_module_says_which_library(ssh, run_module, files, monkeypatch):
    monkeypatch.setattr(_transfer, 'HAS_PARAMIKO', False)
    rc, res = run_module(transfer, args(files))
    assert rc == 1 and res['msg'].startswith('Failed to import the required Python library (paramiko)'), res
    assert ssh == []


# --- direct and relay mode ---------------------------------------------------------------------------


def test_direct_mode_one_connection_with_the_target_options(ssh, run_module, files):
    rc, res = run_module(transfer, args(files, port=2222, user='backup', key_file='~/k', host_key_checking=False,
                                        timeout=5, io_timeout=60))
    assert rc == 0 and res['changed'] and res['relay'] is False, res
    assert [e.options for e in ssh] == [dict(host='backup', port=2222, user='backup',
                                             key_file=os.path.expanduser('~/k'), host_key_checking=False,
                                             timeout=5, io_timeout=60)]
    assert all(e.closed for e in ssh)
    with open(files[1], 'rb') as f:
        assert f.read() == DATA
    assert (res['sha1'], res['size'], res['bytes_sent']) == (SHA1, len(DATA), len(DATA))


def test_relay_mode_connects_to_the_source_host_with_its_own_options(ssh, run_module, files):
    rc, res = run_module(transfer, args(files, src_host='web1', src_port=2200, src_user='reader',
                                        src_key_file='/keys/web1', host_key_checking=False, timeout=7,
                                        io_timeout=70))
    assert rc == 0 and res['changed'] and res['relay'] is True, res
    assert [e.options for e in ssh] == [
        dict(host='backup', port=22, user='root', key_file=None, host_key_checking=False, timeout=7, io_timeout=70),
        dict(host='web1', port=2200, user='reader', key_file='/keys/web1', host_key_checking=False, timeout=7,
             io_timeout=70)]
    assert all(e.closed for e in ssh)
    assert ssh[1].commands, 'the source was not read through the source host'
    with open(files[1], 'rb') as f:
        assert f.read() == DATA


@pytest.mark.parametrize('relay', [False, True])
def test_check_mode_sends_nothing(ssh, run_module, files, relay):
    rc, res = run_module(transfer, args(files, **({'src_host': 'web1'} if relay else {})), check_mode=True)
    assert rc == 0 and res['changed'] and res['bytes_to_send'] == len(DATA) and res['bytes_sent'] == 0, res
    assert not os.path.exists(files[1]) and not os.path.exists(files[1] + '.part')


def test_uppercase_sha1_is_the_same_sha1(ssh, run_module, files):
    rc, res = run_module(transfer, args(files, sha1=SHA1.upper()))
    assert rc == 0 and res['sha1'] == SHA1, res


# --- the module's own checks: clear errors, nothing written, connections closed ----------------------


@pytest.mark.parametrize('sha1', ['xyz', SHA1[:39], SHA1 + '0', 'g' * 40, SHA1[:20] + ' ' + SHA1[21:],
                                  SHA1 + '\nrm -rf /'])
@pytest.mark.parametrize('relay', [False, True])
def test_bad_sha1(ssh, run_module, files, sha1, relay):
    rc, res = run_module(transfer, args(files, sha1=sha1, **({'src_host': 'web1'} if relay else {})))
    assert rc == 1 and res['msg'].startswith('sha1 must be 40 hexadecimal digits, got '), res
    assert nothing_written(files)
    assert ssh == []  # refused before any connection


def test_wrong_sha1_is_refused_by_the_target(ssh, run_module, files):
    rc, res = run_module(transfer, args(files, sha1='0' * 40))
    assert rc == 1 and 'SHA-1' in res['msg'], res
    assert not os.path.exists(files[1])


def test_missing_local_source(ssh, run_module, files):
    rc, res = run_module(transfer, args(files, src=files[0] + '.nope'))
    assert rc == 1 and res['msg'] == 'source file %s.nope does not exist or is not a regular file' % files[0], res
    assert nothing_written(files) and all(e.closed for e in ssh)


def test_local_source_that_is_a_directory(ssh, run_module, files):
    rc, res = run_module(transfer, args(files, src=os.path.dirname(files[0])))
    assert rc == 1 and 'is not a regular file' in res['msg'], res
    assert nothing_written(files)


def test_missing_source_on_the_source_host(ssh, run_module, files):
    rc, res = run_module(transfer, args(files, src=files[0] + '.nope', src_host='web1'))
    assert rc == 1 and res['msg'].startswith('cannot read source file '), res
    assert nothing_written(files) and all(e.closed for e in ssh)


def test_bad_sha1_is_refused_before_any_connection(ssh, run_module, files):
    rc, res = run_module(transfer, args(files, sha1='xyz'))
    assert rc == 1 and ssh == []


def test_source_host_options_without_source_host_are_refused(ssh, run_module, files):
    rc, res = run_module(transfer, args(files, src_user='reader'))
    assert rc == 1 and ssh == []

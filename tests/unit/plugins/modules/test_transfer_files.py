"""The transfer module's files option: several files over one connection per side, each file alone in
its failure. The real receiver script runs under sh instead of over SSH (no sshd here)."""

import hashlib
import os

import pytest
import yaml

from ansible_collections.lvdiff.thin.plugins.module_utils import _transfer
from ansible_collections.lvdiff.thin.plugins.modules import transfer

from ansible_collections.lvdiff.thin.tests.support.shell import ShellEndpoint


@pytest.fixture
def hosts(monkeypatch):
    made = []

    class Endpoint(ShellEndpoint):
        def __init__(self, host, port, user, key_file, host_key_checking, timeout, io_timeout):
            super().__init__()
            self.host, self.closed = host, False
            made.append(self)

        def close(self):
            self.closed = True
    monkeypatch.setattr(_transfer, 'SSHEndpoint', Endpoint)
    monkeypatch.setattr(_transfer, 'HAS_PARAMIKO', True)  # the fake endpoints need no paramiko
    return made


@pytest.fixture
def files(tmp_path):
    out = []
    for i, size in enumerate((0, 1, 3 << 20)):
        path = tmp_path / ('f%d.lvdiff' % i)
        path.write_bytes(os.urandom(size))
        out.append({'src': str(path), 'dest': str(tmp_path / 'in' / path.name),
                    'sha1': hashlib.sha1(path.read_bytes()).hexdigest()})
    return out


def args(files, **kw):
    return dict({'files': files, 'host': 'backup'}, **kw)


def test_files_over_one_connection_then_unchanged(hosts, files, run_module):
    rc, res = run_module(transfer, args(files))
    assert rc == 0 and res['changed'] is True and res['relay'] is False, res
    assert [f['dest_file'] for f in res['files']] == [f['dest'] for f in files]
    for want, got in zip(files, res['files']):
        with open(want['dest'], 'rb') as f:
            assert hashlib.sha1(f.read()).hexdigest() == want['sha1'] == got['sha1']
        assert got['changed'] is True and got['failed'] is False and got['bytes_sent'] == got['size']
    assert len(hosts) == 1 and hosts[0].closed
    assert len(hosts[0].commands) == 3, 'one session per file on the one connection'
    rc, res = run_module(transfer, args(files))
    assert rc == 0 and res['changed'] is False and not any(f['changed'] for f in res['files'])


def test_check_mode_sends_nothing(hosts, files, run_module):
    rc, res = run_module(transfer, args(files), check_mode=True)
    assert rc == 0 and res['changed'] is True
    assert [f['bytes_to_send'] for f in res['files']] == [0, 1, 3 << 20]
    assert not os.path.exists(os.path.dirname(files[0]['dest']))


def test_a_failing_file_fails_alone(hosts, files, run_module, tmp_path):
    bad = [dict(files[0], src=str(tmp_path / 'missing')), dict(files[1], sha1='0' * 40), files[2]]
    rc, res = run_module(transfer, args(bad))
    assert rc == 0 and res['changed'] is True and 'msg' not in res
    missing, mismatch, good = res['files']
    assert missing == {'src': bad[0]['src'], 'dest_file': bad[0]['dest'], 'changed': False, 'failed': True,
                       'msg': 'source file %s does not exist or is not a regular file' % bad[0]['src']}
    assert mismatch['failed'] is True and mismatch['msg'].startswith('SHA-1 mismatch on the target')
    assert not os.path.exists(bad[1]['dest'])
    assert good['failed'] is False and os.path.getsize(good['dest_file']) == 3 << 20
    # a missing source file leaves the connection alone; after a failed transfer the next file connects
    # afresh; every connection is closed
    assert len(hosts) == 2 and all(h.closed for h in hosts)


def test_relay_reads_every_file_on_the_source_host(hosts, files, run_module):
    rc, res = run_module(transfer, args(files[1:], src_host='web1'))
    assert rc == 0 and res['relay'] is True and not any(f['failed'] for f in res['files']), res
    assert sorted(h.host for h in hosts) == ['backup', 'web1'], 'one connection per side'
    for f in files[1:]:
        assert os.path.getsize(f['dest']) == os.path.getsize(f['src'])


@pytest.mark.parametrize('bad, msg', [
    ({'src': '/x'}, 'parameters are mutually exclusive: files|src'),
    ({'sha1': '0' * 40}, 'parameters are mutually exclusive: files|sha1'),
])
def test_files_excludes_src(hosts, files, run_module, bad, msg):
    rc, res = run_module(transfer, args(files, **bad))
    assert rc == 1 and res['msg'] == msg and hosts == []


def test_src_or_files_is_required(hosts, run_module):
    rc, res = run_module(transfer, {'host': 'backup'})
    assert rc == 1 and 'one of the following is required: src, files' in res['msg']
    rc, res = run_module(transfer, {'host': 'backup', 'src': '/x'})
    assert rc == 1 and 'parameters are required together: src, dest' in res['msg']


def test_every_returned_field_is_documented(hosts, files, run_module, tmp_path):
    doc = yaml.safe_load(transfer.RETURN)
    # files[] documents its own keys, and says a file has a single file's keys (those returned with src) too
    single = set(k for k, v in doc.items() if v['returned'].startswith('with O(src)'))
    assert single == {'dest_file', 'size', 'sha1', 'bytes_sent', 'resumed_from', 'bytes_to_send', 'seconds'}
    assert all('RV(%s)' % k in ' '.join(doc['files']['description']) for k in single - {'dest_file', 'seconds'})
    fields = set(doc['files']['contains']) | single
    for check_mode in (True, False, False):
        rc, res = run_module(transfer, args(files + [dict(files[0], src=str(tmp_path / 'missing'))]),
                             check_mode=check_mode)
        assert not set(res) - set(doc) - {'changed', 'invocation'}
        for f in res['files']:
            assert not set(f) - fields, sorted(set(f) - fields)

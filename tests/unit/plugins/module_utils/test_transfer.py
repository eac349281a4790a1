"""The transfer protocol end to end with its real receiver script, run by /bin/sh on
this machine instead of over SSH (no sshd here): fresh sends, resume after an
interruption, corrupted and foreign .part files, check mode, relay sources."""
from __future__ import annotations

import hashlib
import os
import stat

import pytest

from ansible_collections.lvdiff.thin.plugins.module_utils import _transfer
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError

from ansible_collections.lvdiff.thin.tests.support.shell import ShellEndpoint


@pytest.fixture
def payload(tmp_path):
    data = os.urandom(3 * _transfer.BUFFER + 12345)
    src = tmp_path / 'src' / 'file.lvdiff'
    src.parent.mkdir()
    src.write_bytes(data)
    return str(src), data, hashlib.sha1(data).hexdigest()


def dest_in(tmp_path, name='in dir/with \'quotes\' and $x/file.lvdiff'):
    return str(tmp_path / name)


def test_fresh_send_then_idempotent(tmp_path, payload):
    src, data, sha1 = payload
    dest = dest_in(tmp_path)
    r = _transfer.transfer(_transfer.LocalSource(src), ShellEndpoint(), dest)
    assert r['changed'] and r['bytes_sent'] == len(data) and r['resumed_from'] == 0
    assert r['sha1'] == sha1 and r['size'] == len(data)
    with open(dest, 'rb') as f:
        assert f.read() == data
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(dest)).st_mode) == 0o700
    assert sorted(os.listdir(os.path.dirname(dest))) == ['file.lvdiff']
    again = _transfer.transfer(_transfer.LocalSource(src), ShellEndpoint(), dest, sha1=sha1)
    assert not again['changed'] and again['bytes_sent'] == 0


def test_interrupted_then_resumed_sends_only_the_rest(tmp_path, payload):
    src, data, sha1 = payload
    dest = dest_in(tmp_path, 'd/f')
    cut = _transfer.BUFFER + 777
    with pytest.raises(LvdiffError) as e:
        _transfer.transfer(_transfer.LocalSource(src), ShellEndpoint(cut_after=cut), dest, sha1=sha1)
    assert 'transfer interrupted' in e.value.msg and 'next run sends only the rest' in e.value.msg
    assert os.path.getsize(dest + '.part') == cut and not os.path.exists(dest)
    r = _transfer.transfer(_transfer.LocalSource(src), ShellEndpoint(), dest, sha1=sha1)
    assert r['changed'] and r['resumed_from'] == cut and r['bytes_sent'] == len(data) - cut
    with open(dest, 'rb') as f:
        assert f.read() == data
    assert not os.path.exists(dest + '.part') and not os.path.exists(dest + '.part.sha1')


def test_check_mode_reports_the_rest_and_writes_nothing(tmp_path, payload):
    src, data, sha1 = payload
    dest = dest_in(tmp_path, 'new/f')
    r = _transfer.transfer(_transfer.LocalSource(src), ShellEndpoint(), dest, check=True)
    assert r['changed'] and r['bytes_to_send'] == len(data) and r['bytes_sent'] == 0
    assert not os.path.exists(os.path.dirname(dest))
    with pytest.raises(LvdiffError):
        _transfer.transfer(_transfer.LocalSource(src), ShellEndpoint(cut_after=1000), dest, sha1=sha1)
    r = _transfer.transfer(_transfer.LocalSource(src), ShellEndpoint(), dest, check=True)
    assert r['resumed_from'] == 1000 and r['bytes_to_send'] == len(data) - 1000
    assert os.path.getsize(dest + '.part') == 1000


def test_corrupted_part_is_detected_deleted_and_not_renamed(tmp_path, payload):
    src, data, sha1 = payload
    dest = dest_in(tmp_path, 'f')
    with pytest.raises(LvdiffError):
        _transfer.transfer(_transfer.LocalSource(src), ShellEndpoint(cut_after=5000), dest, sha1=sha1)
    with open(dest + '.part', 'r+b') as f:
        f.seek(100)
        f.write(b'\0' if data[100] else b'\1')
    with pytest.raises(LvdiffError) as e:
        _transfer.transfer(_transfer.LocalSource(src), ShellEndpoint(), dest, sha1=sha1)
    assert 'SHA-1 mismatch on the target' in e.value.msg and 'nothing was renamed' in e.value.msg
    assert e.value.details['resumed_from'] == 5000
    assert not os.path.exists(dest) and not os.path.exists(dest + '.part')
    assert not os.path.exists(dest + '.part.sha1')
    r = _transfer.transfer(_transfer.LocalSource(src), ShellEndpoint(), dest, sha1=sha1)
    assert r['resumed_from'] == 0 and r['bytes_sent'] == len(data)


def test_wrong_expected_sha1_fails_and_keeps_dest(tmp_path, payload):
    src, data, sha1 = payload
    dest = dest_in(tmp_path, 'f')
    with open(dest, 'wb') as f:
        f.write(b'old content')
    with pytest.raises(LvdiffError) as e:
        _transfer.transfer(_transfer.LocalSource(src), ShellEndpoint(), dest, sha1='0' * 40)
    assert 'SHA-1 mismatch' in e.value.msg
    with open(dest, 'rb') as f:
        assert f.read() == b'old content'


def test_dest_with_other_content_is_replaced(tmp_path, payload):
    src, data, sha1 = payload
    dest = dest_in(tmp_path, 'f')
    with open(dest, 'wb') as f:
        f.write(data[:-1] + b'x')
    r = _transfer.transfer(_transfer.LocalSource(src), ShellEndpoint(), dest)
    assert r['changed'] and r['bytes_sent'] == len(data)
    with open(dest, 'rb') as f:
        assert f.read() == data


@pytest.mark.parametrize('case', ['longer', 'foreign', 'no_sidecar'])
def test_unusable_part_restarts_from_zero(tmp_path, payload, case):
    src, data, sha1 = payload
    dest = dest_in(tmp_path, 'f')
    with open(dest + '.part', 'wb') as f:
        f.write(data + b'more' if case == 'longer' else data[:4096])
    if case != 'no_sidecar':
        with open(dest + '.part.sha1', 'w') as f:
            f.write((sha1 if case == 'longer' else 'f' * 40) + '\n')
    r = _transfer.transfer(_transfer.LocalSource(src), ShellEndpoint(), dest, sha1=sha1)
    assert r['resumed_from'] == 0 and r['bytes_sent'] == len(data)
    with open(dest, 'rb') as f:
        assert f.read() == data


def test_complete_part_is_verified_without_sending(tmp_path, payload):
    src, data, sha1 = payload
    dest = dest_in(tmp_path, 'f')
    with open(dest + '.part', 'wb') as f:  # all arrived, then the connection broke before the rename
        f.write(data)
    with open(dest + '.part.sha1', 'w') as f:
        f.write(sha1 + '\n')
    r = _transfer.transfer(_transfer.LocalSource(src), ShellEndpoint(), dest, sha1=sha1)
    assert r['changed'] and r['resumed_from'] == len(data) and r['bytes_sent'] == 0


def test_relay_source_resumes_from_the_offset(tmp_path, payload):
    src, data, sha1 = payload
    dest = dest_in(tmp_path, 'relay/f')
    remote = ShellEndpoint()
    with pytest.raises(LvdiffError):
        _transfer.transfer(_transfer.RemoteSource(remote, src), ShellEndpoint(cut_after=2 * _transfer.BUFFER + 1),
                           dest)
    r = _transfer.transfer(_transfer.RemoteSource(remote, src), ShellEndpoint(), dest)
    assert r['sha1'] == sha1 and r['resumed_from'] == 2 * _transfer.BUFFER + 1
    assert r['bytes_sent'] == len(data) - r['resumed_from']
    assert any(c.startswith('exec tail -c +%d ' % (r['resumed_from'] + 1)) for c in remote.commands)
    with open(dest, 'rb') as f:
        assert f.read() == data


def test_relay_source_missing(tmp_path):
    with pytest.raises(LvdiffError) as e:
        _transfer.transfer(_transfer.RemoteSource(ShellEndpoint(), str(tmp_path / 'nope')), ShellEndpoint(),
                           str(tmp_path / 'd'))
    assert 'cannot read source file' in e.value.msg


def test_local_source_missing(tmp_path):
    with pytest.raises(LvdiffError) as e:
        _transfer.LocalSource(str(tmp_path / 'nope'))
    assert 'does not exist' in e.value.msg


def test_empty_file(tmp_path):
    src = tmp_path / 'empty'
    src.write_bytes(b'')
    dest = str(tmp_path / 'out' / 'empty')
    r = _transfer.transfer(_transfer.LocalSource(str(src)), ShellEndpoint(), dest)
    assert r['changed'] and r['bytes_sent'] == 0 and os.path.getsize(dest) == 0
    assert not _transfer.transfer(_transfer.LocalSource(str(src)), ShellEndpoint(), dest)['changed']


# --- pure pieces ---------------------------------------------------------------------------------------


def test_parse_reply():
    assert _transfer.parse_reply('LVDIFF-RECV offset 42\n') == ('offset', '42')
    assert _transfer.parse_reply('LVDIFF-RECV done') == ('done', '')
    assert _transfer.parse_reply('LVDIFF-RECV error command sha1sum not found') == (
        'error', 'command sha1sum not found')
    assert _transfer.parse_reply('Welcome to host!') is None


def test_resume_offset():
    assert _transfer.resume_offset('done', '', 10) is None
    assert _transfer.resume_offset('offset', '0', 10) == 0
    assert _transfer.resume_offset('offset', '10', 10) == 10
    for word, arg in (('offset', '11'), ('offset', '-1'), ('offset', 'x'), ('busy', '')):
        with pytest.raises(LvdiffError):
            _transfer.resume_offset(word, arg, 10)


def test_outcome_messages():
    assert _transfer.outcome('ok', '', '/d', 10, 0, 10) is None
    assert 'holds 4 of 10 bytes' in _transfer.outcome('short', '4', '/d', 10, 0, 4).msg
    assert 'deleted' in _transfer.outcome('mismatch', 'ab' * 20, '/d', 10, 3, 7).msg
    assert 'another transfer' in _transfer.outcome('busy', '', '/d', 10, 0, 0).msg


def test_check_sha1():
    assert _transfer.check_sha1(' ' + 'A' * 40 + '\n') == 'a' * 40
    with pytest.raises(LvdiffError):
        _transfer.check_sha1('abc')


def test_commands_quote_paths():
    cmd = _transfer.receiver_command("/x/it's here", 5, 'a' * 40)
    assert cmd.endswith("""lvdiff-recv '/x/it'"'"'s here' 5 %s send""" % ('a' * 40))
    assert _transfer.source_command('/a b', 0) == "exec tail -c +1 -- '/a b'"

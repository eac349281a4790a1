"""The transfer against hostile peers and hostile local users (issue 9, findings 1, 2, 8).

The receiver is the real script run by sh on this machine, as root and as the unprivileged user
nobody, in shared directories where another user (uid ATTACKER) planted symlinks, hard links and
files of their own. The SSH side: test_transfer_ssh.py."""
from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import stat
import tempfile
import time

import pytest

from ansible_collections.lvdiff.thin.plugins.module_utils import _transfer
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError

from ansible_collections.lvdiff.thin.tests.support.shell import ShellEndpoint, ShellSession

ATTACKER = 4242   # another local user of the target
NOBODY = 65534
DATA = os.urandom(200000) + b'end'
SHA1 = hashlib.sha1(DATA).hexdigest()
AS_NOBODY = ('/usr/bin/setpriv', '--reuid=%d' % NOBODY, '--regid=%d' % NOBODY, '--clear-groups')

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason='plants files of other users (chown)')


def busybox_env(tmp_path):
    """An environment whose PATH has busybox applets only (util-linux flock: Debian's busybox has none)."""
    busybox = shutil.which('busybox')
    if busybox is None:
        pytest.skip('busybox is not installed')
    d = tmp_path / 'busybox'
    d.mkdir()
    d.chmod(0o755)
    for applet in ('sh', 'cat', 'tee', 'wc', 'sha1sum', 'cut', 'mv', 'rm', 'mkdir', 'dirname', 'ls', 'id', 'sync',
                   'sleep', 'touch', 'tail'):
        (d / applet).symlink_to(busybox)
    (d / 'flock').symlink_to(shutil.which('flock'))
    return dict(os.environ, PATH=str(d))


def fake_bin(tmp_path, name, body):
    """A directory with one executable script `name`, to put first in PATH."""
    d = tmp_path / 'fakebin'
    d.mkdir(exist_ok=True)
    f = d / name
    f.write_text('#!/bin/sh\n' + body)
    f.chmod(0o755)
    return str(d)


@pytest.fixture
def source(tmp_path):
    src = tmp_path / 'source.bin'
    src.write_bytes(DATA)
    return _transfer.LocalSource(str(src))


# --- finding 1: relay mode, what the source host says goes to the target ---------------------------------


def test_relay_source_answering_a_command_is_refused_and_nothing_runs(tmp_path):
    mark = tmp_path / 'r'  # short: sha1sum's answer goes through cut -c1-40
    src = tmp_path / 'five'
    src.write_bytes(b'12345')
    # the source host's sha1sum answers the probe with a command for the target's shell
    path = fake_bin(tmp_path, 'sha1sum', 'cat >/dev/null; echo ";id>%s;#"\n' % mark)
    hostile = ShellEndpoint(env=dict(os.environ, PATH=path + ':' + os.environ['PATH']))
    target = ShellEndpoint()
    with pytest.raises(LvdiffError) as e:
        _transfer.transfer(_transfer.RemoteSource(hostile, str(src)), target, str(tmp_path / 'dest'))
    assert target.commands == [] and not mark.exists()
    assert 'answered the size/SHA-1 probe' in e.value.msg and ';id>' in e.value.msg


@pytest.mark.parametrize('out, want_sha1', [
    ('5\n;id>/tmp/x;#\n', True), ('5\n' + 'a' * 40 + '\n;id\n', True), ('5;id\n', False), ('-5\n', False),
    ('5\n', True), ('5\n' + 'a' * 40 + '\n', False), ('5\n' + 'a' * 39 + '\n', True), ('1_0\n', False),
    ('0x5\n', False), ('9223372036854775808\n', False), ('5', False), ('', False)])
def test_source_probe_reply_is_validated(out, want_sha1):
    with pytest.raises(LvdiffError) as e:
        _transfer.parse_source_info(out, want_sha1, 'src')
    assert 'probe' in e.value.msg


def test_source_probe_reply_accepted():
    assert _transfer.parse_source_info('5\n' + 'a' * 40 + '\n', True, 's') == (5, 'a' * 40)
    assert _transfer.parse_source_info('   9223372036854775807\n', False, 's') == (2 ** 63 - 1, None)


def test_receiver_command_is_safe_whatever_it_is_given(tmp_path):
    mark = tmp_path / 'ran'
    dest = "%s/d;touch %s;#'$(touch %s)`touch %s`\n" % (tmp_path, mark, mark, mark)
    cmd = _transfer.receiver_command(dest, 5, 'a' * 40, check=True)
    assert shlex.split(cmd) == ['sh', '-c', _transfer.RECEIVER, 'lvdiff-recv', dest, '5', 'a' * 40, 'check']
    rc, out, err = ShellSession(cmd).finish()
    assert rc == 0 and 'LVDIFF-RECV offset 0' in out and not mark.exists()
    for size, sha1 in (('5;id', 'a' * 40), ('5', 'a' * 40), (True, 'a' * 40), (-1, 'a' * 40), (2 ** 63, 'a' * 40),
                       (5, 'a' * 40 + ';id'), (5, ';id>/tmp/x;#'), (5, None)):
        with pytest.raises(LvdiffError):
            _transfer.receiver_command(dest, size, sha1)


def test_receiver_offset_and_source_offset_are_strict():
    for arg in ('1_0', ' 5', '+5', '5 ', '٣', '0x1', '1' * 20):
        with pytest.raises(LvdiffError):
            _transfer.resume_offset('offset', arg, 100)
    for offset in (True, -1, '3', 2 ** 63):
        with pytest.raises(LvdiffError):
            _transfer.source_command('/f', offset)
    assert _transfer.source_command("/a b'", 9) == "exec tail -c +10 -- '/a b'\"'\"''"


# --- finding 2: the receiver in a directory other users can write ------------------------------------------


@pytest.fixture
def shared():
    """(make, base): make(mode) returns a new directory of that mode under base, a root-owned 0755
    directory in /tmp that nobody can reach; base also holds the victims of the attacks."""
    base = tempfile.mkdtemp(prefix='lvdiff-shared.', dir='/tmp')
    os.chmod(base, 0o755)
    count = [0]

    def make(mode, owner=0):
        count[0] += 1
        d = os.path.join(base, 'shared%d' % count[0])
        os.mkdir(d)
        os.chown(d, owner, owner)
        os.chmod(d, mode)
        return d
    yield make, base
    shutil.rmtree(base)


def victim(base, uid, name='victim'):
    """A file the receiving user may write, that the attacker wants the data (or a truncation) in."""
    v = os.path.join(base, name)
    with open(v, 'wb') as f:
        f.write(b'precious')
    os.chown(v, uid, uid)
    return v


def attacker_made(path, uid=ATTACKER):
    os.lchown(path, uid, uid)


USERS = [pytest.param((), 0, id='root'), pytest.param(AS_NOBODY, NOBODY, id='nobody')]


def send(source, dest, prefix, **kw):
    return _transfer.transfer(source, ShellEndpoint(prefix=prefix), dest, sha1=SHA1, **kw)


@needs_root
@pytest.mark.parametrize('prefix, uid', USERS)
def test_sticky_shared_directory_works_for_our_own_files(shared, source, prefix, uid):
    make, base = shared
    d = make(0o1777)
    dest = os.path.join(d, 'sub', 'f.lvdiff')
    with pytest.raises(LvdiffError):
        _transfer.transfer(source, ShellEndpoint(cut_after=1000, prefix=prefix), dest, sha1=SHA1)
    r = send(source, dest, prefix)
    assert r['resumed_from'] == 1000
    st = os.lstat(dest)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (uid, 0o600) and open(dest, 'rb').read() == DATA
    assert sorted(os.listdir(os.path.dirname(dest))) == ['f.lvdiff']
    assert not send(source, dest, prefix)['changed']


@needs_root
@pytest.mark.parametrize('prefix, uid', USERS)
@pytest.mark.parametrize('name', ['.part', '.part.sha1', ''])
def test_planted_symlink_is_refused(shared, source, prefix, uid, name):
    make, base = shared
    d = make(0o1777)
    dest = os.path.join(d, 'f.lvdiff')
    target = victim(base, uid)
    os.symlink(target, dest + name)
    attacker_made(dest + name)
    for check in (True, False):
        with pytest.raises(LvdiffError) as e:
            send(source, dest, prefix, check=check)
        assert 'refusing %s%s' % (dest, name) in e.value.msg
    assert open(target, 'rb').read() == b'precious' and os.path.islink(dest + name)
    assert sorted(os.listdir(d)) == ['f.lvdiff' + name]


@needs_root
@pytest.mark.parametrize('prefix, uid', USERS)
def test_dest_symlink_to_a_directory_is_refused(shared, source, prefix, uid):
    make, base = shared
    d, elsewhere = make(0o1777), make(0o755, uid)
    dest = os.path.join(d, 'f.lvdiff')
    os.symlink(elsewhere, dest)
    attacker_made(dest)
    with pytest.raises(LvdiffError) as e:
        send(source, dest, prefix)
    assert 'refusing %s:' % dest in e.value.msg
    assert os.listdir(elsewhere) == []


@needs_root
@pytest.mark.parametrize('prefix, uid', USERS)
def test_part_of_another_user_is_not_adopted(shared, source, prefix, uid):
    """The attacker's own .part, and a sidecar naming the right SHA-1: the old receiver resumed it and
    renamed it into place, a verified dest owned by the attacker, mode 0666."""
    make, base = shared
    d = make(0o1777)
    dest = os.path.join(d, 'f.lvdiff')
    for name, content in (('.part', DATA[:1000]), ('.part.sha1', (SHA1 + '\n').encode())):
        with open(dest + name, 'wb') as f:
            f.write(content)
        os.chmod(dest + name, 0o666)
        attacker_made(dest + name)
    with pytest.raises(LvdiffError) as e:
        send(source, dest, prefix)
    assert 'refusing %s.part' % dest in e.value.msg
    assert not os.path.lexists(dest) and os.path.getsize(dest + '.part') == 1000


@needs_root
@pytest.mark.parametrize('prefix, uid', USERS)
def test_dest_of_another_user_is_refused(shared, source, prefix, uid):
    make, base = shared
    d = make(0o1777)
    dest = os.path.join(d, 'f.lvdiff')
    with open(dest, 'wb') as f:
        f.write(DATA)  # even with the right content: its owner could change it at any time
    attacker_made(dest)
    with pytest.raises(LvdiffError) as e:
        send(source, dest, prefix)
    assert 'refusing %s:' % dest in e.value.msg


@needs_root
@pytest.mark.parametrize('prefix, uid', USERS)
def test_part_hard_linked_to_another_file_is_refused(shared, source, prefix, uid):
    make, base = shared
    d = make(0o1777)
    dest = os.path.join(d, 'f.lvdiff')
    target = victim(base, uid)
    os.link(target, dest + '.part')  # one of our own files, under the .part's name
    with pytest.raises(LvdiffError) as e:
        send(source, dest, prefix)
    assert 'refusing %s.part' % dest in e.value.msg
    assert open(target, 'rb').read() == b'precious'


@needs_root
@pytest.mark.parametrize('prefix, uid', USERS)
@pytest.mark.parametrize('where', ['dir 0777', 'dir 0775', 'dir of attacker', 'parent 0777', 'symlink of attacker',
                                   'name ending in a newline'])
def test_directory_others_can_change_is_refused(shared, source, prefix, uid, where):
    """Without the sticky bit, another user can rename our files and put a symlink in their place
    at any moment: the old receiver wrote through one planted before it started."""
    make, base = shared
    target = victim(base, uid)
    if where == 'symlink of attacker':  # a path through the attacker's symlink ends in a directory of ours
        real = make(0o700, uid)
        d = os.path.join(make(0o1777), 'link')
        os.symlink(real, d)
        attacker_made(d)
    elif where == 'name ending in a newline':  # that $(dirname) would lose
        d = os.path.join(make(0o1777), 'evil\n')
        os.mkdir(d, 0o777)
        os.chmod(d, 0o777)
        attacker_made(d)
    elif where == 'parent 0777':
        d = os.path.join(make(0o777), 'ours')
        os.mkdir(d)
        os.chown(d, uid, uid)
    else:
        d = make({'dir 0777': 0o777, 'dir 0775': 0o775, 'dir of attacker': 0o755}[where],
                 ATTACKER if where == 'dir of attacker' else uid)
    dest = os.path.join(d, 'f.lvdiff')
    if where != 'symlink of attacker':
        os.symlink(target, dest + '.part')
    for check in (True, False):
        with pytest.raises(LvdiffError) as e:
            send(source, dest, prefix, check=check)
        assert 'refusing directory %s' % d.rstrip('\n') in e.value.msg
    assert open(target, 'rb').read() == b'precious' and not os.path.lexists(dest)


@needs_root
@pytest.mark.parametrize('prefix, uid', USERS)
def test_receiver_under_busybox(shared, source, tmp_path, prefix, uid):
    """The same promises where the target has only busybox (its sh, ls, mv, test)."""
    env = busybox_env(tmp_path)
    make, base = shared
    d = make(0o1777)
    dest = os.path.join(d, 'f.lvdiff')
    with pytest.raises(LvdiffError):
        _transfer.transfer(source, ShellEndpoint(cut_after=1000, prefix=prefix, env=env), dest, sha1=SHA1)
    r = _transfer.transfer(source, ShellEndpoint(prefix=prefix, env=env), dest, sha1=SHA1)
    assert r['resumed_from'] == 1000 and open(dest, 'rb').read() == DATA and os.stat(dest).st_uid == uid
    assert not _transfer.transfer(source, ShellEndpoint(prefix=prefix, env=env), dest, sha1=SHA1)['changed']
    target = victim(base, uid)
    os.symlink(target, dest + '2.part')
    attacker_made(dest + '2.part')
    with pytest.raises(LvdiffError) as e:
        _transfer.transfer(source, ShellEndpoint(prefix=prefix, env=env), dest + '2', sha1=SHA1)
    assert 'refusing %s2.part' % dest in e.value.msg
    open_dir = make(0o777, uid)
    with pytest.raises(LvdiffError) as e:
        _transfer.transfer(source, ShellEndpoint(prefix=prefix, env=env), open_dir + '/f', sha1=SHA1)
    assert 'refusing directory %s' % open_dir in e.value.msg
    assert open(target, 'rb').read() == b'precious' and os.listdir(open_dir) == []


# --- finding 8: the receiver's lock ------------------------------------------------------------------------


@pytest.mark.parametrize('shell', ['sh', 'busybox'])
def test_a_run_that_locked_the_removed_lock_file_does_not_go_on(tmp_path, shell):
    """Run A receives corrupted bytes and removes its .part and its lock file (.part.sha1). Run B had
    opened that file before and locks it only now; run C starts and locks a new one. The old receiver
    let B and C both write the same .part: a dest of twice the size with a wrong SHA-1."""
    env = busybox_env(tmp_path) if shell == 'busybox' else dict(os.environ)
    dest = str(tmp_path / 'd' / 'f.lvdiff')
    cmd = _transfer.receiver_command(dest, len(DATA), SHA1)
    waiting, go = tmp_path / 'waiting', tmp_path / 'go'
    slow = fake_bin(tmp_path, 'flock', 'touch %s\nwhile [ ! -e %s ]; do sleep 0.02; done\nexec %s "$@"\n' % (
        waiting, go, shutil.which('flock')))
    a = ShellSession(cmd, env=env)
    assert _transfer.parse_reply(a.readline()) == ('offset', '0')
    b = ShellSession(cmd, env=dict(env, PATH=slow + ':' + env['PATH']))
    deadline = time.monotonic() + 10
    while not waiting.exists() and time.monotonic() < deadline:  # B holds the lock file open, waits to lock it
        time.sleep(0.02)
    a.write(bytes([DATA[0] ^ 0xff]) + DATA[1:])  # not b'X': DATA is random, its first byte may be X
    rc, out, err = a.finish()
    assert 'LVDIFF-RECV mismatch' in out
    go.touch()
    b_word = _transfer.parse_reply(b.readline())[0]
    time.sleep(0.3)
    c = ShellSession(cmd, env=env)
    c_word = _transfer.parse_reply(c.readline())[0]
    for session, word in ((b, b_word), (c, c_word)):
        if word == 'offset':
            session.write(DATA)
        session.finish()
    with open(dest, 'rb') as f:
        got = f.read()
    assert (len(got), hashlib.sha1(got).hexdigest()) == (len(DATA), SHA1)
    assert b_word == 'busy' and c_word == 'offset'

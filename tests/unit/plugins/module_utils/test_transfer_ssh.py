"""The SSH side of the transfer against a paramiko server in a thread on 127.0.0.1 that misbehaves
on purpose (issue 9, finding 10): refuses the login, never answers, answers without end."""
from __future__ import annotations

import hashlib
import os
import socket
import threading
import time

import pytest

from ansible_collections.lvdiff.thin.plugins.module_utils import _transfer
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError

paramiko = pytest.importorskip('paramiko')  # not in ansible-test's units virtualenv

DATA = os.urandom(200000)
SHA1 = hashlib.sha1(DATA).hexdigest()


@pytest.fixture
def source(tmp_path):
    src = tmp_path / 'source.bin'
    src.write_bytes(DATA)
    return _transfer.LocalSource(str(src))


class _Server(paramiko.ServerInterface):
    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.global_requests = []

    def get_allowed_auths(self, username):
        return 'publickey'

    def check_auth_publickey(self, username, key):
        return paramiko.AUTH_FAILED if self.behaviour == 'deny' else paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel, command):
        threading.Thread(target=self.answer, args=(channel,), daemon=True).start()
        return True

    def check_global_request(self, kind, msg):
        self.global_requests.append(kind)
        return False

    def answer(self, channel):
        try:
            if self.behaviour == 'endless line':
                channel.sendall(b'x' * 100000)
            elif self.behaviour == 'flood':
                channel.sendall(b'LVDIFF-RECV offset 0\n' + b'y\n' * 100000)
                channel.send_exit_status(0)
                channel.shutdown_write()
            # 'silent': accepts the command and never answers
        except (EOFError, OSError):
            pass  # the client hung up first, as it should on a peer that floods it


@pytest.fixture
def ssh_server(tmp_path):
    """start(behaviour) -> (port, key_file, server): one connection at a time, until the test ends."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(5)
    host_key = paramiko.ECDSAKey.generate()
    client_key = paramiko.ECDSAKey.generate()
    key_file = str(tmp_path / 'id_ecdsa')
    client_key.write_private_key_file(key_file)
    transports = []
    server = _Server('silent')

    def serve():
        while True:
            try:
                conn = listener.accept()[0]
            except OSError:
                return
            t = paramiko.Transport(conn)
            t.add_server_key(host_key)
            transports.append(t)
            try:
                t.start_server(server=server)
            except (paramiko.SSHException, EOFError):
                pass
    threading.Thread(target=serve, daemon=True).start()

    def start(behaviour):
        server.behaviour = behaviour
        return listener.getsockname()[1], key_file, server
    yield start
    listener.close()
    for t in transports:
        t.close()


def client_transports():
    deadline = time.monotonic() + 5
    while True:
        alive = [t for t in threading.enumerate()
                 if isinstance(t, paramiko.Transport) and not t.server_mode and t.is_alive()]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def in_thread(fn, seconds=20):
    """fn()'s exception, waiting at most `seconds` (the old code waited forever)."""
    caught = []

    def run():
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            caught.append(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), 'still waiting after %d s' % seconds
    return caught[0] if caught else None


def test_failed_login_closes_the_client(ssh_server):
    port, key_file = ssh_server('deny')[:2]
    with pytest.raises(LvdiffError) as e:
        _transfer.SSHEndpoint('127.0.0.1', port, 'root', key_file, host_key_checking=False, timeout=5)
    assert 'cannot connect to root@127.0.0.1:%d' % port in e.value.msg
    assert client_transports() == []


def test_closed_port_fails_cleanly():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(LvdiffError) as e:
        _transfer.SSHEndpoint('127.0.0.1', port, host_key_checking=False, timeout=5)
    assert 'cannot connect' in e.value.msg and client_transports() == []


def test_silent_target_times_out_and_keepalives_are_sent(ssh_server, source, tmp_path):
    port, key_file, server = ssh_server('silent')
    end = _transfer.SSHEndpoint('127.0.0.1', port, 'root', key_file, host_key_checking=False, timeout=5,
                                io_timeout=1, keepalive=0.2)
    try:
        start = time.monotonic()
        e = in_thread(lambda: _transfer.transfer(source, end, str(tmp_path / 'dest'), sha1=SHA1))
        assert isinstance(e, LvdiffError) and 'sent nothing for 1' in e.msg and 'io_timeout' in e.msg
        assert time.monotonic() - start < 10
        assert 'keepalive@lag.net' in server.global_requests
    finally:
        end.close()
    assert client_transports() == []


@pytest.mark.parametrize('behaviour, message', [('endless line', 'sent a line longer than 4096 bytes'),
                                                ('flood', 'sent more than 65536 bytes of output')])
def test_replies_are_bounded(ssh_server, behaviour, message, source, tmp_path):
    port, key_file = ssh_server(behaviour)[:2]
    end = _transfer.SSHEndpoint('127.0.0.1', port, 'root', key_file, host_key_checking=False, timeout=5,
                                io_timeout=3)
    try:
        e = in_thread(lambda: _transfer.transfer(source, end, str(tmp_path / 'dest'), sha1=SHA1, check=True))
        assert isinstance(e, LvdiffError) and message in e.msg, e
    finally:
        end.close()

# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resumable, verified file transfer over SSH: a sender here, a small POSIX shell
receiver on the target, one SSH session per transfer.

The protocol (one ``exec`` of RECEIVER on the target, with dest, size, SHA-1, mode):
  1. The receiver answers with one line: ``LVDIFF-RECV done`` (dest already holds
     this very file) or ``LVDIFF-RECV offset N``: the bytes of ``<dest>.part`` it keeps.
     It keeps a .part only if ``<dest>.part.sha1`` names the same source SHA-1 (the
     .part belongs to this file) and the .part is not longer than the source.
  2. The sender streams bytes [N, size) of the source on the session's stdin, then
     closes it. The receiver appends them to the .part with ``tee -a``, and hashes the
     kept .part (read back) and the new bytes on the way, in a parallel ``sha1sum``.
  3. The receiver checks the length, compares that SHA-1 of the whole .part, and
     either renames it to dest (``ok``), keeps it for a later resume (``short``: the
     stream ended early), or deletes it (``mismatch``, ``long``).

The source is a local file (the module runs on the source host) or a file on a
third host read through SSH with ``tail -c +N`` (relay mode on the controller).
Memory stays bounded: one buffer of BUFFER bytes plus paramiko's channel windows.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import shlex
import time

from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError

try:
    import paramiko
    HAS_PARAMIKO = True
    PARAMIKO_IMPORT_ERROR = None
except ImportError as e:  # pragma: no cover - exercised by the sanity import test
    paramiko = None
    HAS_PARAMIKO = False
    PARAMIKO_IMPORT_ERROR = e

BUFFER = 1 << 20
TAG = 'LVDIFF-RECV'
_SHA1 = re.compile(r'^[0-9a-f]{40}$')

# $1 dest, $2 size in bytes, $3 expected SHA-1, $4 'send' or 'check'. Exit codes: 0 done/ok/offset
# (check), 2 error, 3 short (.part kept), 4 mismatch or long (.part deleted), 5 busy.
RECEIVER = r'''
set -u
umask 077
d=$1 total=$2 want=$3 mode=$4
p=$d.part
say() { echo "LVDIFF-RECV $*"; }
for t in cat tee wc sha1sum cut mv rm mkdir dirname; do
  command -v "$t" >/dev/null 2>&1 || { say "error command $t not found on the target"; exit 2; }
done
sum_of() { sha1sum <"$1" | cut -c1-40; }
if [ -f "$d" ] && [ "$(wc -c <"$d")" -eq "$total" ] && [ "$(sum_of "$d")" = "$want" ]; then
  say done; exit 0
fi
dir=$(dirname -- "$d")
if [ ! -d "$dir" ]; then
  if [ "$mode" = check ]; then say offset 0; exit 0; fi
  mkdir -p -- "$dir" || { say "error cannot create directory $dir"; exit 2; }
fi
if [ "$mode" != check ] && command -v flock >/dev/null 2>&1; then
  exec 9>>"$p.sha1" || { say "error cannot write $p.sha1"; exit 2; }
  flock -n 9 || { say "busy another transfer to $d is running"; exit 5; }
fi
have=0
if [ -f "$p" ] && [ "$(cat -- "$p.sha1" 2>/dev/null)" = "$want" ]; then
  have=$(($(wc -c <"$p") + 0))
  [ "$have" -le "$total" ] || have=0
fi
say offset "$have"
[ "$mode" = check ] && exit 0
if [ "$have" -eq 0 ]; then
  { : >"$p" && echo "$want" >"$p.sha1"; } || { say "error cannot write $p"; exit 2; }
fi
# Hash while receiving, in a process of its own: the .part kept from earlier runs read back from
# disk, then the new bytes as tee appends them (a second pass after the transfer cost 40% more time).
sum=$({ cat -- "$p" && tee -a -- "$p"; } | sha1sum | cut -c1-40)
got=$(wc -c <"$p")
if [ "$got" -lt "$total" ]; then say short "$got"; exit 3; fi
if [ "$got" -gt "$total" ]; then rm -f -- "$p" "$p.sha1"; say long "$got"; exit 4; fi
if [ "$sum" != "$want" ]; then rm -f -- "$p" "$p.sha1"; say mismatch "$sum"; exit 4; fi
sync -- "$p" 2>/dev/null || :
mv -f -- "$p" "$d" || { say "error cannot rename $p to $d"; exit 2; }
rm -f -- "$p.sha1"
say ok
'''


def receiver_command(dest, size, sha1, check=False):
    """The command line that runs RECEIVER on the target (any POSIX login shell)."""
    return 'sh -c %s lvdiff-recv %s %d %s %s' % (
        shlex.quote(RECEIVER), shlex.quote(dest), size, sha1, 'check' if check else 'send')


def source_command(path, offset):
    """Command that prints bytes [offset, end) of path on a remote source host."""
    return 'exec tail -c +%d -- %s' % (offset + 1, shlex.quote(path))


def source_info_command(path, sha1=True):
    q = shlex.quote(path)
    cmd = 'set -e; test -f %s; wc -c <%s' % (q, q)
    if sha1:
        cmd += '; sha1sum <%s | cut -c1-40' % q
    return cmd


def parse_reply(line):
    """(word, argument) from a receiver line; None if the line is not one of ours."""
    line = line.strip()
    if not line.startswith(TAG + ' '):
        return None
    rest = line[len(TAG) + 1:].split(' ', 1)
    return rest[0], (rest[1] if len(rest) > 1 else '')


def check_sha1(value, what='sha1'):
    value = (value or '').strip().lower()
    if not _SHA1.match(value):
        raise LvdiffError('%s must be 40 hexadecimal digits, got %r' % (what, value))
    return value


def resume_offset(word, arg, size):
    """The offset to send from, given the receiver's first reply; None if dest is done."""
    if word == 'done':
        return None
    if word != 'offset':
        raise LvdiffError('unexpected first answer from the receiver: %s %s' % (word, arg))
    try:
        offset = int(arg)
    except ValueError:
        raise LvdiffError('the receiver sent a bad offset %r' % arg)
    if not 0 <= offset <= size:
        raise LvdiffError('the receiver keeps %d bytes of a %d-byte file' % (offset, size))
    return offset


def outcome(word, arg, dest, size, offset, sent):
    """Turn the receiver's final reply into None (success) or a LvdiffError to raise."""
    if word == 'ok':
        return None
    part = dest + '.part'
    if word == 'short':
        return LvdiffError('transfer interrupted: %s holds %s of %d bytes (%d sent in this run); it is kept '
                           'and the next run sends only the rest' % (part, arg, size, sent))
    if word == 'mismatch':
        return LvdiffError('SHA-1 mismatch on the target: %s has SHA-1 %s, the source file has another; '
                           'the .part was deleted and nothing was renamed (resumed from byte %d); the next '
                           'run sends the file again from the start' % (part, arg, offset))
    if word == 'long':
        return LvdiffError('%s grew to %s bytes, more than the %d-byte source (another writer?); it was deleted'
                           % (part, arg, size))
    if word == 'busy':
        return LvdiffError('another transfer to %s is running on the target' % dest)
    return LvdiffError('the receiver on the target failed: %s %s' % (word, arg))


def file_sha1(path):
    h = hashlib.sha1()
    buf = bytearray(BUFFER)
    view = memoryview(buf)
    with open(path, 'rb', buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()


# --- endpoints -----------------------------------------------------------------------------------------


class SSHEndpoint:
    """A host reached with paramiko. ``session(cmd)`` runs cmd with a stdin/stdout stream."""

    def __init__(self, host, port=22, user='root', key_file=None, host_key_checking=True, timeout=30):
        self.host, self.port, self.user = host, port, user
        self.label = '%s@%s:%d' % (user, host, port)
        _speed_up_paramiko()
        client = paramiko.SSHClient()
        for known in (None, '/etc/ssh/ssh_known_hosts'):  # ~/.ssh/known_hosts, then the system's; never written
            if known is None or os.path.exists(known):
                try:
                    client.load_system_host_keys(known)
                except (IOError, paramiko.SSHException):
                    pass
        client.set_missing_host_key_policy(paramiko.RejectPolicy() if host_key_checking else paramiko.AutoAddPolicy())
        try:
            client.connect(host, port=port, username=user, key_filename=key_file, timeout=timeout,
                           banner_timeout=timeout, auth_timeout=timeout, look_for_keys=key_file is None,
                           allow_agent=key_file is None, **_aead_first())
        except paramiko.BadHostKeyException as e:
            raise LvdiffError('host key of %s does not match known_hosts: %s' % (self.label, e))
        except paramiko.SSHException as e:
            msg = str(e)
            if 'not found in known_hosts' in msg:
                raise LvdiffError('cannot connect to %s: its host key is not in known_hosts (add it, or set '
                                  'host_key_checking=false)' % self.label)
            raise LvdiffError('cannot connect to %s: %s' % (self.label, msg))
        except (OSError, EOFError) as e:
            raise LvdiffError('cannot connect to %s: %s' % (self.label, e))
        self.client = client

    def session(self, cmd):
        transport = self.client.get_transport()
        chan = transport.open_session(window_size=8 << 20, max_packet_size=32768)
        chan.exec_command(cmd)
        return ChannelSession(chan, self.label)

    def run(self, cmd):
        """(rc, stdout, stderr) of cmd."""
        s = self.session(cmd)
        s.close_stdin()
        return s.finish()

    def close(self):
        self.client.close()


class ChannelSession:
    """One command on an SSH channel: write its stdin, read its stdout by lines or blocks."""

    def __init__(self, chan, label):
        self.chan = chan
        self.label = label
        self._buf = b''

    def write(self, data):
        try:
            self.chan.sendall(data)
        except (OSError, EOFError, paramiko.SSHException) as e:
            raise BrokenPipeError('sending to %s failed: %s' % (self.label, e))

    def readline(self):
        while b'\n' not in self._buf:
            data = self.chan.recv(65536)
            if not data:
                break
            self._buf += data
        line, sep, self._buf = self._buf.partition(b'\n')
        return (line + sep).decode('utf-8', 'replace')

    def readinto(self, view):
        """Read up to len(view) bytes of stdout; 0 at its end."""
        if self._buf:
            n = min(len(view), len(self._buf))
            view[:n] = self._buf[:n]
            self._buf = self._buf[n:]
            return n
        data = self.chan.recv(len(view))
        view[:len(data)] = data
        return len(data)

    def close_stdin(self):
        try:
            self.chan.shutdown_write()
        except (OSError, EOFError):
            pass

    def finish(self):
        """Wait for the command; (rc, rest of stdout, stderr) as text."""
        out = [self._buf]
        self._buf = b''
        while True:
            data = self.chan.recv(65536)
            if not data:
                break
            out.append(data)
        err = []
        while True:
            data = self.chan.recv_stderr(65536)
            if not data:
                break
            err.append(data)
        rc = self.chan.recv_exit_status()
        self.chan.close()
        return rc, b''.join(out).decode('utf-8', 'replace'), b''.join(err).decode('utf-8', 'replace')

    def abort(self):
        self.chan.close()


def _aead_first():
    """connect() arguments that put AES-GCM first among the ciphers, where this paramiko has both
    (3.2 and later): it authenticates as it encrypts, without paramiko's separate HMAC-SHA-256
    pass over every packet; 11% faster sends, measured (docs/benchmarks.md). The other ciphers
    stay offered, for servers without it."""
    preferred = paramiko.Transport._preferred_ciphers
    gcm = tuple(c for c in preferred if '-gcm@' in c)
    if not gcm or 'transport_factory' not in inspect.signature(paramiko.SSHClient.connect).parameters:
        return {}

    class AeadFirstTransport(paramiko.Transport):
        _preferred_ciphers = gcm + tuple(c for c in preferred if c not in gcm)
    return {'transport_factory': AeadFirstTransport}


_SPEEDUP_DONE = []


def _speed_up_paramiko():
    """paramiko's packetizer coerces each outgoing Message with common.asbytes(), which
    first tries b(), whose TypeError message embeds repr() of the whole 32 KiB packet:
    profiled at a third of the sender's CPU time. Same result for every type, without it."""
    if _SPEEDUP_DONE:
        return
    _SPEEDUP_DONE.append(True)
    packet = getattr(paramiko, 'packet', None)
    original = getattr(packet, 'asbytes', None)
    if original is None:
        return

    def asbytes(s):
        if isinstance(s, bytes):
            return s
        if not isinstance(s, (str, bytearray, memoryview)) and hasattr(s, 'asbytes'):
            return s.asbytes()
        return original(s)
    packet.asbytes = asbytes


# --- sources -------------------------------------------------------------------------------------------


class LocalSource:
    """A file on the host running the module."""

    def __init__(self, path):
        self.path = path = os.path.expanduser(path)
        self.label = path
        if not os.path.isfile(path):
            raise LvdiffError('source file %s does not exist or is not a regular file' % path)

    def info(self, want_sha1):
        return os.path.getsize(self.path), (file_sha1(self.path) if want_sha1 else None)

    def send(self, session, offset, count, progress):
        """Write bytes [offset, offset+count) to session; return how many were written."""
        buf = bytearray(BUFFER)
        view = memoryview(buf)
        sent = 0
        with open(self.path, 'rb', buffering=0) as f:
            f.seek(offset)
            while sent < count:
                n = f.readinto(view[:min(BUFFER, count - sent)])
                if not n:
                    raise LvdiffError('source file %s shrank while it was sent (%d of %d bytes from offset %d)'
                                      % (self.path, sent, count, offset))
                session.write(view[:n])
                sent += n
                progress(sent)
        return sent


class RemoteSource:
    """A file on another host, read through an SSH endpoint (relay mode)."""

    def __init__(self, endpoint, path):
        self.endpoint = endpoint
        self.path = path
        self.label = '%s:%s' % (endpoint.label, path)

    def info(self, want_sha1):
        rc, out, err = self.endpoint.run(source_info_command(self.path, want_sha1))
        lines = out.split()
        if rc != 0 or len(lines) != (2 if want_sha1 else 1):
            raise LvdiffError('cannot read source file %s (rc=%d): %s' % (self.label, rc, (err or out).strip()
                                                                          or 'no such regular file'))
        return int(lines[0]), (lines[1] if want_sha1 else None)

    def send(self, session, offset, count, progress):
        src = self.endpoint.session(source_command(self.path, offset))
        src.close_stdin()
        buf = bytearray(BUFFER)
        view = memoryview(buf)
        sent = 0
        try:
            while sent < count:
                filled = 0
                want = min(BUFFER, count - sent)
                while filled < want:  # fill the buffer: fewer, bigger writes to the target
                    n = src.readinto(view[filled:want])
                    if not n:
                        break
                    filled += n
                if not filled:
                    break
                session.write(view[:filled])
                sent += filled
                progress(sent)
        except BaseException:
            src.abort()
            raise
        if sent == count:  # all we need (the target checks the SHA-1): do not wait for more
            src.abort()
            return sent
        rc, out, err = src.finish()
        raise LvdiffError('reading source file %s failed after %d of %d bytes from offset %d (rc=%d): %s'
                          % (self.label, sent, count, offset, rc, err.strip() or 'it ended early'))


# --- the transfer --------------------------------------------------------------------------------------


def transfer(source, target, dest, sha1=None, check=False, clock=time.monotonic):
    """Send source to dest on the target endpoint; returns the module's result dict.

    sha1, if given, is trusted as the source's SHA-1 (e.g. lvdiff's result) and the
    source is not read to compute it; the target verifies the received file against it.
    """
    start = clock()
    size, computed = source.info(sha1 is None)
    sha1 = check_sha1(sha1) if sha1 is not None else computed
    result = {'changed': False, 'dest_file': dest, 'size': size, 'sha1': sha1, 'bytes_sent': 0, 'resumed_from': 0}
    session = target.session(receiver_command(dest, size, sha1, check))
    line = session.readline()
    reply = parse_reply(line)
    if reply is None:
        session.close_stdin()
        rc, out, err = session.finish()
        raise LvdiffError('the receiver on %s did not start (rc=%d): %s' % (target.label, rc,
                                                                            (line + out + err).strip()))
    offset = resume_offset(reply[0], reply[1], size)
    if offset is None:
        session.close_stdin()
        session.finish()
        result['seconds'] = round(clock() - start, 3)
        return result
    result.update(changed=True, resumed_from=offset)
    if check:
        session.close_stdin()
        session.finish()
        result.update(bytes_to_send=size - offset, seconds=round(clock() - start, 3))
        return result

    progress = [0]

    def note(n):
        progress[0] = n
    error = None
    try:
        if size > offset:
            source.send(session, offset, size - offset, note)
    except BrokenPipeError as e:  # the receiver went away: its last words tell why
        error = e
    session.close_stdin()
    rc, out, err = session.finish()
    result.update(bytes_sent=progress[0], seconds=round(clock() - start, 3))
    final = None
    for text in out.splitlines():
        final = parse_reply(text) or final
    if final is None:
        raise LvdiffError('the transfer to %s:%s stopped after %d bytes (rc=%d): %s; what arrived is kept in '
                          '%s.part and the next run resumes' % (target.label, dest, progress[0], rc,
                                                                (err or out).strip() or error, dest))
    failure = outcome(final[0], final[1], dest, size, offset, progress[0])
    if failure is not None:
        failure.details.update(bytes_sent=progress[0], resumed_from=offset)
        raise failure
    return result

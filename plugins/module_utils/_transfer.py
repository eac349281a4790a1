# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
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
import socket
import time

from ansible_collections.lvdiff.thin.plugins.module_utils._chunkcopy import MAX_OFFSET, fill
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError
from ansible_collections.lvdiff.thin.plugins.module_utils._progress import NO_PROGRESS

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
# Other users of the target may write the destination directory (a shared spool, /var/tmp): the
# receiver writes only into files of its own user, in directories nobody else can rename things in,
# and creates every file exclusively (noclobber), so that a symlink, a hard link or another user's
# file planted under one of its names is refused, never written through or adopted.
RECEIVER = r"""
set -uf
umask 077
d=$1 total=$2 want=$3 mode=$4
say() { echo "LVDIFF-RECV $*"; }
fail() { say "error $*"; exit 2; }
busy() { say "busy another transfer to $d is running"; exit 5; }
for t in cat tee wc sha1sum cut mv rm mkdir ls id; do
  command -v "$t" >/dev/null 2>&1 || fail "command $t not found on the target"
done
case $total in ''|*[!0-9]*) fail "bad size $total";; esac
case $want in *[!0-9a-f]*) fail "bad SHA-1 $want";; esac
case $d in /*) ;; *) d=$PWD/$d;; esac
case $d in */) fail "dest $d names a directory";; esac
# ${d%/*}, not $(dirname): a command substitution drops trailing newlines of a name
p=$d.part s=$d.part.sha1 dir=${d%/*} me=$(id -u)
dir=${dir:-/}
# Every existing component of path $1 is owned by us or root, and a directory that group or
# others may write has the sticky bit (so they cannot rename or delete what we own in it).
trusted() {
  q=$1
  while :; do
    if [ -e "${q:-/}" ] || [ -h "${q:-/}" ]; then
      set -- $(ls -ldn -- "${q:-/}")
      [ "$3" = "$me" ] || [ "$3" = 0 ] || return 1
      case $1 in
        d????w*|d???????w*) case $1 in d????????[tT]*) ;; *) return 1;; esac;;
        d*|l*) ;;
        *) return 1;;
      esac
    fi
    [ -n "$q" ] || return 0
    q=${q%/*}
  done
}
# $1 is absent, or a regular file of ours (not a symlink) with one link ($2=any: or more).
ours() {
  [ -e "$1" ] || [ -h "$1" ] || return 0
  o=${2:-}
  set -- $(ls -ldn -- "$1")
  case $1 in -*) ;; *) return 1;; esac
  [ "$3" = "$me" ] && { [ "$o" = any ] || [ "$2" = 1 ]; }
}
# $1 exists and is ours: made now if missing, exclusively (noclobber never follows a symlink).
claim() {
  [ -e "$1" ] || [ -h "$1" ] || (set -C; : >"$1") 2>/dev/null
  [ -e "$1" ] && ours "$1" "${2:-}"
}
refuse() { fail "refusing $1: it must be a regular file owned by uid $me, with no other link, not a symlink"; }
untrusted="is writable by other users without the sticky bit, or owned by another user than uid $me or root"
trusted "$dir" || fail "refusing directory $dir: it or a directory above it $untrusted"
if [ ! -d "$dir" ]; then
  if [ "$mode" = check ]; then say offset 0; exit 0; fi
  mkdir -p -- "$dir" || fail "cannot create directory $dir"
fi
real=$(cd -P -- "$dir" && pwd -P && echo x) || fail "cannot enter directory $dir"
real=${real%?x}
trusted "$dir" && trusted "$real" || fail "refusing directory $dir ($real): it or a directory above it $untrusted"
ours "$d" any || refuse "$d"
ours "$p" || refuse "$p"
ours "$s" || refuse "$s"
sum_of() { sha1sum <"$1" | cut -c1-40; }
if [ -f "$d" ] && [ "$(wc -c <"$d")" -eq "$total" ] && [ "$(sum_of "$d")" = "$want" ]; then
  say done; exit 0
fi
if [ "$mode" != check ] && command -v flock >/dev/null 2>&1; then
  claim "$s" || refuse "$s"
  exec 9<"$s" || fail "cannot open $s"
  flock -n 9 || busy
  # A run that succeeds removes $s while it holds the lock: one that opened the old file and
  # one that made a new file would both get "the" lock. Go on only if $s is still the file we hold.
  if [ -e /dev/fd/9 ] && ! [ "$s" -ef /dev/fd/9 ]; then busy; fi
  ours "$s" || refuse "$s"
fi
have=0
if [ -f "$p" ] && [ "$(cat -- "$s" 2>/dev/null)" = "$want" ]; then
  have=$(($(wc -c <"$p") + 0))
  [ "$have" -le "$total" ] || have=0
fi
say offset "$have"
[ "$mode" = check ] && exit 0
if [ "$have" -eq 0 ]; then
  claim "$p" || refuse "$p"
  claim "$s" || refuse "$s"
  { : >|"$p" && echo "$want" >|"$s"; } || fail "cannot write $p"
fi
# Hash while receiving, in a process of its own: the .part kept from earlier runs read back from
# disk, then the new bytes as tee appends them (a second pass after the transfer cost 40% more time).
sum=$({ cat -- "$p" && tee -a -- "$p"; } | sha1sum | cut -c1-40)
got=$(wc -c <"$p")
if [ "$got" -lt "$total" ]; then say short "$got"; exit 3; fi
if [ "$got" -gt "$total" ]; then rm -f -- "$p" "$s"; say long "$got"; exit 4; fi
if [ "$sum" != "$want" ]; then rm -f -- "$p" "$s"; say mismatch "$sum"; exit 4; fi
sync -- "$p" 2>/dev/null || :
# mv would move the .part into a directory that a symlink planted as dest points to: own the name first.
claim "$d" any || refuse "$d"
mv -f -- "$p" "$d" || fail "cannot rename $p to $d"
rm -f -- "$s"
say ok
"""

# Bounds on what a peer may send: a size (a file of at most 2**63-1 bytes), a reply line, the
# output of a command that is read whole (error messages, the source's probe).
MAX_SIZE = MAX_OFFSET
MAX_LINE = 4096
MAX_OUTPUT = 64 << 10


def check_size(size, what='size'):
    """size as an int in 0..MAX_SIZE; LvdiffError for anything else (a bool, a str, a negative)."""
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
        raise LvdiffError('%s must be an integer from 0 to %d, got %r' % (what, MAX_SIZE, size))
    return size


def shell_words(*words):
    """A remote command line: every word quoted for a POSIX shell, whatever it holds."""
    return ' '.join(shlex.quote(str(w)) for w in words)


def receiver_command(dest, size, sha1, check=False):
    """The command line that runs RECEIVER on the target (any POSIX login shell)."""
    return shell_words('sh', '-c', RECEIVER, 'lvdiff-recv', dest, check_size(size), check_sha1(sha1),
                       'check' if check else 'send')


def source_command(path, offset):
    """Command that prints bytes [offset, end) of path on a remote source host."""
    return 'exec ' + shell_words('tail', '-c', '+%d' % (check_size(offset, 'offset') + 1), '--', path)


def source_info_command(path, sha1=True):
    q = shlex.quote(path)
    cmd = 'set -e; test -f %s; wc -c <%s' % (q, q)
    if sha1:
        cmd += '; sha1sum <%s | cut -c1-40' % q
    return cmd


_INFO = re.compile(r'[ \t]*([0-9]{1,19})[ \t]*\n(?:([0-9a-f]{40})\n)?')


def parse_source_info(out, want_sha1, label):
    """(size, sha1 or None) from the source host's answer to source_info_command; LvdiffError
    unless it is exactly a size line and, if asked for, a SHA-1 line (it reaches the target)."""
    m = _INFO.fullmatch(out)
    if m is None or bool(m.group(2)) != want_sha1 or int(m.group(1)) > MAX_SIZE:
        raise LvdiffError('the source host %s answered the size%s probe with %r, not %s' % (
            label, '/SHA-1' if want_sha1 else '', out[:200],
            'a size and a SHA-1 line' if want_sha1 else 'a size line'))
    return int(m.group(1)), m.group(2)


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
    if not re.fullmatch(r'[0-9]{1,19}', arg):
        raise LvdiffError('the receiver sent a bad offset %r' % arg[:200])
    offset = int(arg)
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
    """A host reached with paramiko. ``session(cmd)`` runs cmd with a stdin/stdout stream.

    A peer that stops answering cannot hold us forever: every read or write on a session gives up
    after io_timeout seconds without progress, and SSH keepalives every keepalive seconds make a
    connection that died (no FIN, e.g. a NAT or a rebooted host) fail instead of looking idle."""

    def __init__(self, host, port=22, user='root', key_file=None, host_key_checking=True, timeout=30,
                 io_timeout=600, keepalive=15):
        self.host, self.port, self.user = host, port, user
        self.io_timeout = io_timeout
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
            try:
                client.connect(host, port=port, username=user, key_filename=key_file, timeout=timeout,
                               banner_timeout=timeout, auth_timeout=timeout, look_for_keys=key_file is None,
                               allow_agent=key_file is None, **_aead_first())
            except BaseException:
                client.close()  # a failed authentication leaves the transport thread and its socket open
                raise
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
        if keepalive:
            client.get_transport().set_keepalive(keepalive)

    def session(self, cmd):
        transport = self.client.get_transport()
        chan = transport.open_session(window_size=8 << 20, max_packet_size=32768, timeout=self.io_timeout)
        chan.settimeout(self.io_timeout)
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
    """One command on an SSH channel: write its stdin, read its stdout by lines or blocks.
    Everything the peer sends is bounded: a line to MAX_LINE bytes, the output read whole by
    finish() to MAX_OUTPUT bytes per stream, every wait to the channel's timeout."""

    def __init__(self, chan, label):
        self.chan = chan
        self.label = label
        self._buf = b''

    def _timed_out(self, doing):
        self.chan.close()
        return LvdiffError('%s %s for %s s; gave up (a host that hangs, or a file too large to hash in that '
                           'time: raise io_timeout)' % (self.label, doing, self.chan.gettimeout()))

    def _recv(self, n, stderr=False):
        try:
            return (self.chan.recv_stderr if stderr else self.chan.recv)(n)
        except socket.timeout:
            raise self._timed_out('sent nothing')

    def write(self, data):
        try:
            self.chan.sendall(data)
        except socket.timeout:
            raise self._timed_out('accepted no data')
        except (OSError, EOFError, paramiko.SSHException) as e:
            raise BrokenPipeError('sending to %s failed: %s' % (self.label, e))

    def readline(self):
        while b'\n' not in self._buf[:MAX_LINE]:
            if len(self._buf) >= MAX_LINE:
                self.chan.close()
                raise LvdiffError('%s sent a line longer than %d bytes: %r'
                                  % (self.label, MAX_LINE, self._buf[:200]))
            data = self._recv(65536)
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
        data = self._recv(len(view))
        view[:len(data)] = data
        return len(data)

    def close_stdin(self):
        try:
            self.chan.shutdown_write()
        except (OSError, EOFError):
            pass

    def finish(self):
        """Wait for the command; (rc, rest of stdout, stderr) as text."""
        out = self._read_all(self._buf, False)
        self._buf = b''
        err = self._read_all(b'', True)
        if not self.chan.status_event.wait(self.chan.gettimeout()):
            raise self._timed_out('sent no exit status')
        rc = self.chan.recv_exit_status()
        self.chan.close()
        return rc, out.decode('utf-8', 'replace'), err.decode('utf-8', 'replace')

    def _read_all(self, data, stderr):
        while True:
            if len(data) > MAX_OUTPUT:
                self.chan.close()
                raise LvdiffError('%s sent more than %d bytes of output to a command that writes a few lines: '
                                  '%r' % (self.label, MAX_OUTPUT, data[:200]))
            more = self._recv(65536, stderr)
            if not more:
                return data
            data += more

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
        if rc != 0:
            raise LvdiffError('cannot read source file %s (rc=%d): %s' % (self.label, rc, (err or out).strip()
                                                                          or 'no such regular file'))
        return parse_source_info(out, want_sha1, self.endpoint.label)

    def send(self, session, offset, count, progress):
        src = self.endpoint.session(source_command(self.path, offset))
        src.close_stdin()
        buf = bytearray(BUFFER)
        view = memoryview(buf)
        sent = 0
        try:
            while sent < count:
                # fill the buffer: fewer, bigger writes to the target
                filled = fill(src, view[:min(BUFFER, count - sent)])
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


def transfer(source, target, dest, sha1=None, check=False, clock=time.monotonic, progress=NO_PROGRESS,
             phase='sending'):
    """Send source to dest on the target endpoint; returns the module's result dict.

    sha1, if given, is trusted as the source's SHA-1 (e.g. lvdiff's result) and the
    source is not read to compute it; the target verifies the received file against it.
    progress (_progress's) is told, in phase, the bytes the target holds of the file's size.
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
    if reply[0] in ('error', 'busy'):  # refused before anything was sent
        session.close_stdin()
        session.finish()
        raise outcome(reply[0], reply[1], dest, size, 0, 0)
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

    sent = [0]
    progress.start(phase, size)

    def note(n):
        sent[0] = n
        progress.update(offset + n)
    error = None
    try:
        if size > offset:
            source.send(session, offset, size - offset, note)
    except BrokenPipeError as e:  # the receiver went away: its last words tell why
        error = e
    session.close_stdin()
    rc, out, err = session.finish()
    result.update(bytes_sent=sent[0], seconds=round(clock() - start, 3))
    final = None
    for text in out.splitlines():
        final = parse_reply(text) or final
    if final is None:
        raise LvdiffError('the transfer to %s:%s stopped after %d bytes (rc=%d): %s; what arrived is kept in '
                          '%s.part and the next run resumes' % (target.label, dest, sent[0], rc,
                                                                (err or out).strip() or error, dest))
    failure = outcome(final[0], final[1], dest, size, offset, sent[0])
    if failure is not None:
        failure.details.update(bytes_sent=sent[0], resumed_from=offset)
        raise failure
    return result

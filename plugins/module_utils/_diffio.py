# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Writing a diff from volumes, and reading, verifying and applying one, in either format."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import re
import stat
import tempfile

from ansible_collections.lvdiff.thin.plugins.module_utils._chunkcopy import (
    MAX_EXTENT, ZEROS, device_size, discard, is_block_device, lazy_buffer, pwrite_all)
from ansible_collections.lvdiff.thin.plugins.module_utils._codec import DiffHeader, digest_of_range
from ansible_collections.lvdiff.thin.plugins.module_utils import _seal, _zstd
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import (
    BaseMismatchError, FormatError, LvdiffError, MissingLibraryError)
from ansible_collections.lvdiff.thin.plugins.module_utils._format import MAGIC, LvdiffReader, LvdiffWriter
from ansible_collections.lvdiff.thin.plugins.module_utils._hyperlayer import (
    MAGIC as HL_MAGIC, HyperlayerReader, HyperlayerWriter)
from ansible_collections.lvdiff.thin.plugins.module_utils._plan import DATA
from ansible_collections.lvdiff.thin.plugins.module_utils._progress import NO_PROGRESS
from ansible_collections.lvdiff.thin.plugins.module_utils._seal import TAG, encryption_placeholder

FORMATS = ('lvdiff', 'hyperlayer')
_READ_BUFFER = 1 << 20

# The options of format 2, the same on every module (doc fragments lvdiff.thin.encryption and
# lvdiff.thin.encryption.COMPRESSION): writers encrypt and compress with them, readers decrypt.
ENCRYPTION_ARGS = dict(encrypt_key_file=dict(type='path'), encrypt_passphrase=dict(type='str', no_log=True))
ENCRYPTION_EXCLUSIVE = [('encrypt_key_file', 'encrypt_passphrase')]
COMPRESSION_ARGS = dict(compress=dict(type='str', choices=['none', _zstd.ALGORITHM], default='none'),
                        compress_level=dict(type='int', default=3))
HYPERLAYER_REFUSED = ('a HyperLayer file cannot be compressed or encrypted (the Go lvpatch reads neither); '
                      'use format lvdiff to compress or encrypt')


def key_of(p):
    """The _seal.Key that options p name (encrypt_key_file or encrypt_passphrase), or None: the key file read
    and checked now, so that a bad one fails before anything is done."""
    return _seal.Key.from_options(p.get('encrypt_key_file'), p.get('encrypt_passphrase'))


def compress_level_of(p):
    """zstd's level that options p ask for (compress, compress_level), or None for no compression."""
    if p.get('compress', 'none') == 'none':
        return None
    level = p.get('compress_level', 3)
    if isinstance(level, bool) or not isinstance(level, int) or not _zstd.MIN_LEVEL <= level <= _zstd.MAX_LEVEL:
        raise LvdiffError('compress_level %r: zstd levels are %d (fastest) to %d (smallest)'
                          % (level, _zstd.MIN_LEVEL, _zstd.MAX_LEVEL))
    return level


def writer_options(p, fmt='lvdiff'):
    """(compress_level, key) of a writer's options p, refused before anything is done when fmt cannot hold
    them or a library they need is missing (MissingLibraryError), in check mode too."""
    level = compress_level_of(p)
    sealed = p.get('encrypt_key_file') is not None or p.get('encrypt_passphrase') is not None
    if fmt == 'hyperlayer' and (level is not None or sealed):
        raise LvdiffError(HYPERLAYER_REFUSED)
    if level is not None:
        _zstd.require('compressing a diff (compress=zstd)')
    if sealed and not _seal.HAS_CRYPTOGRAPHY:
        raise MissingLibraryError('cryptography', 'encrypting a diff (encrypt_key_file or encrypt_passphrase)',
                                  _seal.CRYPTOGRAPHY_IMPORT_ERROR)
    return level, key_of(p)


def sealing(header):
    """What a diff header says of compression and encryption: compression, encryption, key_id."""
    return {'compression': header.compression['algorithm'] if header.compression else 'none',
            'encryption': header.encryption['algorithm'] if header.encryption else 'none',
            'key_id': header.encryption['key_id'] if header.encryption else None}


def write_diff(out_fd, header, plan, src_fd, base_fd=None, fmt='lvdiff', progress=NO_PROGRESS, compress_level=None,
               key=None):
    """Write the diff that plan describes, reading data from src_fd and base checks
    from base_fd. Returns the stream's sha1, size and counts. progress (_progress's) counts the
    bytes read: phase 'checking base' (its total unknown without a second pass over the plan),
    then 'writing', of the plan's data bytes. compress_level (zstd's, 1-19) and key (a _seal.Key):
    a version 2 lvdiff file, compressed and/or encrypted; None: version 1, as before."""
    if fmt == 'lvdiff':
        writer = LvdiffWriter(out_fd, header, compress_level, key)
    elif fmt == 'hyperlayer':
        if compress_level is not None or key is not None:
            raise LvdiffError(HYPERLAYER_REFUSED)
        writer = HyperlayerWriter(out_fd, header, plan.data_chunks + plan.discard_chunks)
    else:
        raise LvdiffError('unknown diff format %r (use one of %s)' % (fmt, ', '.join(FORMATS)))
    checks = 0
    try:
        if header.incremental and header.checksum_level:
            progress.start('checking base', None)
            for offset, length in plan.base_checks(header.checksum_level, header.sample_seed,
                                                   writer.check_max_len):
                writer.check_from(base_fd, offset, length)
                checks += 1
                progress.add(length)
        progress.start('writing', plan.data_bytes)
        for action, offset, length in plan.byte_extents(writer.data_max_len):
            if action == DATA:
                writer.data_from(src_fd, offset, length)
                progress.add(length)  # one call per record of up to 4 MiB; the clock is read, no syscall
            else:
                writer.discard(offset, length)
        sha1, size = writer.finish()
    except BaseException:
        writer.abort()
        raise
    return {'sha1': sha1, 'size': size, 'checks': checks,
            'data_chunks': plan.data_chunks, 'discard_chunks': plan.discard_chunks,
            'data_bytes': plan.data_bytes, 'discard_bytes': plan.discard_bytes,
            'stored_data_bytes': getattr(writer, 'stored_data_bytes', plan.data_bytes)}


# --- writing a diff file safely ---------------------------------------------------------------


def write_diff_file(dest, header, plan, src_fd, base_fd=None, fmt='lvdiff', source='the volume', on_temp=None,
                    progress=NO_PROGRESS, compress_level=None, key=None):
    """Write the diff that plan describes to the file dest (write_diff's summary). It goes to a private
    temporary file next to dest (create_part: mode 0600 from its creation on, flocked so that no sweep
    removes it), fsynced and renamed to dest by us, then the directory is fsynced: the file never has a
    wider mode than 0600 (atomic_move would chmod a new dest to 0666 & ~umask first, or copy an old
    dest's mode and owner), it is owned by us whoever owned the old dest, and a crash leaves the old
    dest or the new one. on_temp(path) is told the temporary file's path (a module registers it for
    cleanup); a failed write removes it. source names what src_fd reads, for messages; progress, compress_level
    and key: write_diff's."""
    try:
        fd, tmp = create_part(dest)
    except OSError as e:
        raise LvdiffError('cannot create a temporary file next to %s: %s' % (dest, e.strerror))
    try:
        if on_temp is not None:
            on_temp(tmp)
        try:
            written = write_diff(fd, header, plan, src_fd, base_fd, fmt, progress, compress_level, key)
            os.fsync(fd)
            os.rename(tmp, dest)  # while still locked: a sweep never sees a finished file
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS):
                raise LvdiffError('writing %s failed: %s' % (dest, e))
            raise LvdiffError('reading %s or writing %s failed: %s' % (source, dest, e))
    except BaseException:
        if same_file(os.fstat(fd), owned_file(tmp)):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)
    try:
        dir_fd = os.open(os.path.dirname(os.path.abspath(dest)), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return written


def owned_file(path, st=None):
    """os.lstat(path) if path is a regular file that we own, else None. What another user made
    (a symlink, a FIFO, a file of theirs in a shared directory) is never read, kept or removed."""
    try:
        st = st or os.lstat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() else None


def same_file(a, b):
    return b is not None and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _part_name(dest):
    """The pattern of our temporary files for dest: tempfile.mkstemp's 8 random characters."""
    return re.compile(r'\.%s\.[a-z0-9_]{8}\.part\Z' % re.escape(os.path.basename(dest)), re.DOTALL)


def sweep(dest):
    """Remove the temporary files of dest that killed runs left behind: regular files named like ours,
    owned by us, not symlinks, and not locked by a running lvdiff (a writer holds an flock on its
    temporary file until it is renamed to dest). Returns the paths removed."""
    directory = os.path.dirname(os.path.abspath(dest))
    pattern = _part_name(dest)
    swept = []
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        st = owned_file(path) if pattern.match(entry) else None
        if st is None:
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError:
            continue
        try:
            if not same_file(st, os.fstat(fd)):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a running lvdiff writes it
            if same_file(st, owned_file(path)):
                os.unlink(path)
                swept.append(path)
        finally:
            os.close(fd)
    return swept


def remove_file(path, check_mode=False):
    """Remove path if it is a regular file: a symlink (and what it points to), a directory or a device
    is refused. A missing path is fine. Returns whether it was (in check mode: would be) removed.
    unlink removes a name, never follows it: a symlink swapped in after the lstat is removed itself."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise LvdiffError('not removed: cannot stat %s: %s' % (path, e.strerror))
    if not stat.S_ISREG(st.st_mode):
        raise LvdiffError('not removed: %s is not a regular file (%s)' % (path, _kind(st.st_mode)))
    if not check_mode:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        except OSError as e:
            raise LvdiffError('cannot remove %s: %s' % (path, e.strerror))
    return True


def remove_files_in(directory, suffixes, check_mode=False):
    """Remove the regular files directly in directory whose names end with one of suffixes (no recursion,
    no symlink followed, directory itself included). A missing directory is fine. Returns the paths
    removed (in check mode: that would be)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise LvdiffError('not swept: cannot open directory %s: %s (a symlink is refused)' % (directory, e.strerror))
    removed = []
    try:
        with os.scandir(dir_fd) as entries:  # relative to the opened directory: it cannot be swapped meanwhile
            for entry in entries:
                if entry.name.endswith(tuple(suffixes)) and entry.is_file(follow_symlinks=False):
                    if not check_mode:
                        try:
                            os.unlink(entry.name, dir_fd=dir_fd)
                        except FileNotFoundError:
                            continue
                    removed.append(os.path.join(directory, entry.name))
    except OSError as e:
        raise LvdiffError('sweeping %s failed: %s' % (directory, e.strerror))
    finally:
        os.close(dir_fd)
    return sorted(removed)


def _kind(mode):
    for test, kind in ((stat.S_ISLNK, 'a symlink'), (stat.S_ISDIR, 'a directory'), (stat.S_ISFIFO, 'a FIFO'),
                       (stat.S_ISSOCK, 'a socket'), (stat.S_ISBLK, 'a block device'),
                       (stat.S_ISCHR, 'a character device')):
        if test(mode):
            return kind
    return 'mode %o' % mode


def create_part(dest):
    """A new temporary file next to dest, (fd, path): mode 0600 from its creation on (mkstemp opens
    with O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600), and flocked so that no concurrent sweep removes it."""
    while True:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(dest)),
                                   prefix='.%s.' % os.path.basename(dest), suffix='.part')
        try:
            os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask
            fcntl.flock(fd, fcntl.LOCK_EX)
            if same_file(os.fstat(fd), owned_file(tmp)):
                return fd, tmp
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # a sweep took it between its creation and our lock: make another


class _Replay:
    """File object f with the bytes already read from it (head) put back in front: the
    read, readinto and readline that the readers use."""

    def __init__(self, head, f):
        self._head = head
        self._f = f
        self.name = getattr(f, 'name', None)

    def _take(self, n):
        out, self._head = self._head[:n], self._head[n:]
        return out

    def read(self, n):
        out = self._take(n)
        return out + self._f.read(n - len(out)) if len(out) < n else out

    def readinto(self, view):
        if not self._head:
            return self._f.readinto(view)
        out = self._take(len(view))
        view[:len(out)] = out
        return len(out)

    def readline(self, limit):
        nl = self._head.find(b'\n', 0, limit)
        if nl >= 0:
            return self._take(nl + 1)
        out = self._take(limit)
        return out + self._f.readline(limit - len(out)) if len(out) < limit else out


def open_reader(f, key=None, strict=True):
    """A reader for the diff in binary file object f (a file or a pipe), by its magic. key (a _seal.Key):
    to read an encrypted file's records; its header is read without one. Given a key, a file that is not
    encrypted is refused (strict): anyone who can write where the file lies can put a plain file in place of an
    encrypted one, so whoever applies with a key trusts only what the key authenticates. strict=False reads a
    plain file without the key, for reports (lvdiff_info, repository_info) that only say what a file is."""
    reader = _open_reader(f, key)
    if key is not None and not reader.encrypted and not strict:
        reader.key = None  # the key is only checked against an encrypted header: nothing else to undo
    return reader


def _open_reader(f, key):
    if not hasattr(f, 'peek'):
        f = io.BufferedReader(f, _READ_BUFFER)
    head = f.peek(len(HL_MAGIC))[:len(HL_MAGIC)]
    if len(head) < len(HL_MAGIC):
        # peek() gives what one read brought: a pipe may deliver the magic in pieces.
        head = f.read(len(HL_MAGIC))
        f = _Replay(head, f)
    if head.startswith(MAGIC[:len(head)]) and len(head) >= len(MAGIC):
        return LvdiffReader(f, key)
    if head == HL_MAGIC:
        return HyperlayerReader(f, key)
    if not head:
        raise FormatError('the diff file is empty')
    raise FormatError('not a diff file: it starts with %r, neither the lvdiff magic nor HYPERLAYER/1.0'
                      % bytes(head[:16]))


@contextlib.contextmanager
def open_diff(path, key=None, strict=True):
    """Open the diff at path and yield its reader (key, strict: open_reader's)."""
    try:
        f = open(path, 'rb', buffering=_READ_BUFFER)
    except OSError as e:
        raise LvdiffError('cannot open diff file %s: %s' % (path, e.strerror))
    with f:
        with open_reader(f, key, strict) as reader:  # stops the reader's hashing thread, whatever happens
            yield reader


def verify(reader, progress=NO_PROGRESS, before=0, decode=None):
    """Read and verify every record and the trailer, writing nothing. progress: as apply's. decode
    (reader.events'): None verifies all a reader can: everything with the key or for a file that is not
    encrypted; without the key, what a keyless host can (framing, CRCs, order, counts, the SHA-1)."""
    if decode is None:
        decode = not (reader.encrypted and reader.key is None)
    for event in reader.events(decode):
        progress.update(before + reader.pos)
    result = summary(reader)
    result['decoded'] = decode
    return result


def summary(reader):
    """What a reader knows of its diff; the counts, sizes and ratio once its records have been read."""
    h = reader.header
    stored = getattr(reader, 'stored_data_bytes', reader.data_bytes)
    done = reader.sha1 is not None
    return dict(sealing(h), format=h.format, header=h.as_dict(), sha1=reader.sha1, size=reader.size,
                records=dict(reader.counts), data_bytes=reader.data_bytes, discard_bytes=reader.discard_bytes,
                stored_data_bytes=stored if done else None,
                compression_ratio=round(reader.data_bytes / stored, 3) if done and stored else None)


def check_target(header, target_chunk_size=None):
    """Refuse a target pool whose chunk size differs from the diff's."""
    if target_chunk_size is not None and target_chunk_size != header.chunk_size:
        raise LvdiffError('chunk size mismatch: the diff was made on a pool with %d KiB chunks, the '
                          'target pool has %d KiB chunks; restore into a pool with %d KiB chunks'
                          % (header.chunk_size // 1024, target_chunk_size // 1024, header.chunk_size // 1024))


def apply(reader, target_fd, base_check=True, target_chunk_size=None, progress=NO_PROGRESS, before=0):
    """Apply the diff onto target_fd, which holds the base state (a copy or snapshot
    of the base). Base checks are verified before the first write: a wrong base
    changes nothing. Returns the summary. progress is told the bytes of the diff read,
    plus before (the files of a chain applied before this one). An encrypted diff needs a
    reader opened with its key (refused before any event otherwise)."""
    header = reader.header
    check_target(header, target_chunk_size)
    block = is_block_device(target_fd)
    size = header.volume['size']
    if block and device_size(target_fd) < size:
        raise LvdiffError('the target device is %d bytes, smaller than the %d-byte volume in the diff; '
                          'extend it first' % (device_size(target_fd), size))
    zeros_to_discard = header.format == 'hyperlayer'  # its base-only chunks come as zeros
    buf = lazy_buffer(MAX_EXTENT) if base_check else None
    grow = not block and device_size(target_fd) < size
    for kind, offset, length, payload in reader.events():
        progress.update(before + reader.pos)
        if grow and kind != 'check':  # after the base checks, before the first write
            _grow_file(target_fd, size)
            grow = False
        if kind == 'data':
            if zeros_to_discard and payload == ZEROS[:length]:
                discard(target_fd, offset, length, block)
            else:
                pwrite_all(target_fd, payload, offset)
        elif kind == 'discard':
            discard(target_fd, offset, length, block)
        elif base_check:
            check_base_range(target_fd, header, offset, length, payload, buf)
    if not block and device_size(target_fd) != size:
        os.ftruncate(target_fd, size)
    return summary(reader)


def _grow_file(fd, size):
    try:
        os.ftruncate(fd, size)
    except OSError as e:  # EFBIG: the diff's volume is larger than this file system allows
        raise LvdiffError('cannot make the target file %d bytes long: %s' % (size, e.strerror))


def verify_base(reader, base_fd):
    """Run only the diff's base checks against base_fd (they come first), writing nothing."""
    buf = lazy_buffer(MAX_EXTENT)
    for kind, offset, length, digest in reader.events():
        if kind != 'check':
            return
        check_base_range(base_fd, reader.header, offset, length, digest, buf)


def check_base_range(fd, header, offset, length, expected, buf):
    try:
        digest = digest_of_range(header.check_digest, fd, offset, length, buf)
    except LvdiffError:
        raise BaseMismatchError('base check failed: the target base ends before byte %d, which the diff '
                                'checks; it is not the base this diff was made against' % (offset + length))
    if digest != expected:
        raise BaseMismatchError(
            'base check failed at byte %d (length %d): the target does not hold the data the diff was '
            'made against (base %s, %s). Nothing was written. Patch onto the right base, or skip the '
            'check only if you know better' % (offset, length, header.base.get('name') or '?',
                                               header.base.get('uuid')))


def apply_file(path, target_fd, base_check=True, target_chunk_size=None, verify_first=True, key=None):
    """Apply the diff file at path (key: open_reader's). verify_first reads and verifies the whole file
    before the first write, so that a corrupt or truncated file changes nothing even
    on a target that cannot be thrown away; lvpatch writes into a temporary volume
    instead and skips this second read."""
    if verify_first:
        _verify_file(path, target_chunk_size, key)
    with open_diff(path, key) as reader:
        return apply(reader, target_fd, base_check=base_check, target_chunk_size=target_chunk_size)


def _verify_file(path, target_chunk_size, key):
    # A function of its own, so that this reader's buffers are freed before apply's reader exists.
    with open_diff(path, key) as reader:
        check_target(reader.header, target_chunk_size)
        verify(reader, decode=True)  # all that apply will check, tags and frames included


def estimate_size(header, plan, fmt='lvdiff', compress_level=None, key=None):
    """The size in bytes of the diff that write_diff would write (exact for lvdiff, encrypted or not;
    within a few bytes per record for HyperLayer), without reading any data. Compressed: an upper
    bound, the size uncompressed (a record is never stored larger), since only the data tells."""
    if fmt == 'hyperlayer':
        checks = sum(1 for c in plan.base_checks(header.checksum_level, header.sample_seed, header.chunk_size))
        w = plan.data_chunks + plan.discard_chunks
        return 400 + sum(len(k) + len(v) * 2 + 6 for k, v in header.pairs.items()) + checks * 40 + (
            1 if checks else 0) + w * 20 + plan.data_bytes + plan.discard_bytes
    v2 = compress_level is not None or key is not None
    record = 28 + (TAG if key is not None else 0)  # head + crc (+ tag)
    checks = sum(1 for c in plan.base_checks(header.checksum_level, header.sample_seed)) if header.incremental else 0
    data_records = sum(1 for a, o, n in plan.byte_extents() if a == DATA)
    discards = plan.extents - sum(1 for a, b, n in plan.chunk_extents() if a == DATA)
    trailer = '{"data_bytes":%d,"discard_bytes":%d,"records":{"check":%d,"data":%d,"discard":%d},"sha1":"%s"%s}' % (
        plan.data_bytes, plan.discard_bytes, checks, data_records, discards, '0' * 40,
        ',"stored_data_bytes":%d' % plan.data_bytes if v2 else '')
    # Compressed: GROUP records are never larger than the DATA records they replace; the trailer may count them.
    groups = len('"group":%d,' % data_records) if compress_level is not None and data_records > 1 else 0
    return (12 + record + len(_header_as_written(header, compress_level, key)._json()) + checks * (record + 32)
            + data_records * record + plan.data_bytes + discards * record + record + len(trailer) + groups)


def _header_as_written(header, compress_level, key):
    """A copy of header with what LvdiffWriter fills in, of the same JSON size (salts and key id placeholders)."""
    if compress_level is None and key is None:
        return header
    copy = DiffHeader(**header.as_dict())
    copy.format_version = 2
    copy.compression = {'algorithm': 'zstd', 'level': compress_level} if compress_level is not None else None
    copy.encryption = encryption_placeholder(key) if key is not None else None
    return copy

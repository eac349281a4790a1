# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Moving chunk data: large positioned reads and writes into reused buffers, a
stream digest computed on a second core, and discards that keep targets sparse.

Every byte of a diff is checksummed, so it passes through user space once anyway:
copy_file_range/splice would save one memcpy only to force a second read for the
hashes. One preadv into a reused buffer plus one writev per extent is the floor.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import queue
import stat
import struct
import threading

from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError

BLKDISCARD = 0x1277
BLKZEROOUT = 0x127f
BLKGETSIZE64 = 0x80081272
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
# Largest range one record or one I/O covers: big enough for streaming speed,
# small enough that a reader verifies a whole record before writing it.
MAX_EXTENT = 4 << 20
# The one buffer of zeros, MAX_EXTENT long: slice a memoryview of it, never copy it.
ZEROS = memoryview(bytes(MAX_EXTENT))
# The largest size or offset off_t, lseek, pwrite and lvresize hold: the one such limit.
MAX_OFFSET = (1 << 63) - 1


class Closing:
    """A with block closes it: the base of whatever holds a file, a thread or a spool."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_range(offset, length):
    """Refuse a byte range outside 0..2**63-1 before any write: the last line of defence
    against a malformed diff (the kernel would refuse it too, but maybe after other writes,
    and struct/ioctl and pwritev would fail with raw errors)."""
    if not 0 <= offset <= offset + length <= MAX_OFFSET:
        raise LvdiffError('refusing to write bytes %d to %d: outside 0 to 2**63-1' % (offset, offset + length))


def lazy_buffer(size):
    """A zero-filled writable buffer of size bytes that uses memory only for the pages
    written into it: anonymous memory, which the kernel provides page by page on first
    write (bytearray(size) would touch all of it at once)."""
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)


class BufferedHasher:
    """Feeds a hashlib object on a worker thread (hashlib releases the GIL on big
    buffers), so hashing a stream overlaps with reading and writing it.

    Buffers come from a small pool: take one with ``buffer()``, fill it, hand it to
    ``submit()``; it returns to the pool once hashed. A buffer is made only when the
    pool is empty, and costs only what has been read into it: memory is at most
    nbuf * bufsize, and as small as the largest records of the stream allow.
    """

    def __init__(self, hashobj, bufsize, nbuf=4):
        self.hashobj = hashobj
        self._bufsize = bufsize
        self._unmade = nbuf
        self._free = queue.Queue()
        self._work = queue.Queue()
        self._thread = threading.Thread(target=self._run, name='lvdiff-hash', daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            item = self._work.get()
            if item is None:
                self._work.task_done()
                return
            data, buf = item
            self.hashobj.update(data)
            if buf is not None:
                self._free.put(buf)
            self._work.task_done()

    def buffer(self):
        try:  # a free buffer first: each new one is more memory touched
            return self._free.get_nowait()
        except queue.Empty:
            if not self._unmade:
                return self._free.get()
        self._unmade -= 1
        return lazy_buffer(self._bufsize)

    def submit(self, data, buf=None):
        """Hash data (in order); if buf is given, it returns to the pool afterwards."""
        self._work.put((data, buf))

    def release(self, buf):
        self._free.put(buf)

    def result(self):
        """Wait until everything submitted is hashed; return the hash object."""
        self._work.join()
        return self.hashobj

    def close(self):
        if self._thread.is_alive():
            self._work.put(None)
            self._thread.join()


def read_exact(fd, view, offset):
    """Fill view from fd at offset; a short read means the source is smaller than planned."""
    got = 0
    total = len(view)
    while got < total:
        n = os.preadv(fd, [view[got:]], offset + got)
        if n == 0:
            raise LvdiffError('unexpected end of data at byte %d (the volume or file is smaller '
                              'than its metadata says)' % (offset + got))
        got += n


def fill(f, view, got=0):
    """Read from file object f into view, after the got bytes already there, until view is
    full or f ends (a pipe or socket gives what it has); the bytes in view. The one such loop."""
    total = len(view)
    while got < total:
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def write_all(fd, parts):
    """writev every part in order, resuming after partial writes (pipes, sockets)."""
    parts = [memoryview(p).cast('B') for p in parts if len(p)]
    while parts:
        n = os.writev(fd, parts)
        while parts and n >= len(parts[0]):
            n -= len(parts[0])
            parts.pop(0)
        if parts and n:
            parts[0] = parts[0][n:]


def pwrite_all(fd, view, offset):
    view = memoryview(view).cast('B')
    check_range(offset, len(view))
    while len(view):
        n = os.pwritev(fd, [view], offset)
        view = view[n:]
        offset += n


def is_block_device(fd):
    return stat.S_ISBLK(os.fstat(fd).st_mode)


def device_size(fd):
    """Size in bytes of a block device or regular file."""
    if is_block_device(fd):
        buf = fcntl.ioctl(fd, BLKGETSIZE64, b'\0' * 8)
        return struct.unpack('Q', buf)[0]
    return os.fstat(fd).st_size


_libc = None


def _punch_hole(fd, offset, length):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    if _libc.fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def write_zeros(fd, offset, length):
    check_range(offset, length)
    while length:
        n = min(length, len(ZEROS))
        pwrite_all(fd, ZEROS[:n], offset)
        offset += n
        length -= n


def discard(fd, offset, length, block_device):
    """Make [offset, offset+length) read as zeros while releasing its space.

    Block devices: BLKDISCARD (a thin pool unmaps whole chunks; the plan's discards
    are chunk-aligned and the pool's chunk size is checked before). Files: punch a
    hole. Where neither is supported, zeros are written, so content is always right.
    """
    check_range(offset, length)
    if not length:
        return
    try:
        if block_device:
            fcntl.ioctl(fd, BLKDISCARD, struct.pack('QQ', offset, length))
        else:
            _punch_hole(fd, offset, length)
        return
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.ENOSYS):
            raise
    if block_device:
        try:
            fcntl.ioctl(fd, BLKZEROOUT, struct.pack('QQ', offset, length))
            return
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL):
                raise
    write_zeros(fd, offset, length)

"""The hashing buffer pool: buffers made on demand, never more than asked for, reused."""

import hashlib

from ansible_collections.lvdiff.thin.plugins.module_utils._chunkcopy import BufferedHasher, lazy_buffer


def test_lazy_buffer_is_zeroed_and_writable():
    buf = lazy_buffer(1 << 20)
    view = memoryview(buf)
    assert len(view) == 1 << 20 and not any(view[:4096]) and not any(view[-4096:])
    view[:3] = b'abc'
    assert bytes(view[:4]) == b'abc\0'


def test_pool_makes_at_most_nbuf_buffers_and_hashes_in_order():
    hasher = BufferedHasher(hashlib.sha1(), 4096, nbuf=2)
    expected = hashlib.sha1()
    seen = set()
    try:
        for i in range(50):
            buf = hasher.buffer()
            seen.add(id(buf))
            data = bytes([i]) * (1 + i * 80)
            view = memoryview(buf)[:len(data)]
            view[:] = data
            expected.update(data)
            hasher.submit(view, buf)
        assert hasher.result().hexdigest() == expected.hexdigest()
    finally:
        hasher.close()
    assert 1 <= len(seen) <= 2


def test_released_buffer_is_reused():
    hasher = BufferedHasher(hashlib.sha1(), 4096, nbuf=3)
    try:
        first = hasher.buffer()
        hasher.release(first)
        assert hasher.buffer() is first
    finally:
        hasher.close()


# --- byte ranges outside 0..2**63-1 are refused before any write (issue 9, findings 5/6) ---

import os  # noqa: E402

import pytest  # noqa: E402

from ansible_collections.lvdiff.thin.plugins.module_utils._chunkcopy import (  # noqa: E402
    discard, pwrite_all, write_zeros)
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError  # noqa: E402

MAX = (1 << 63) - 1


RANGES = [(-4096, 4096), (-1, 0), (0, -4096), (4096, -1), (MAX, 1), (1 << 63, 0), (MAX - 4095, 8192)]


@pytest.mark.parametrize('op,offset,length', [(op, o, n) for op in ('discard', 'write_zeros', 'pwrite_all')
                                              for o, n in RANGES if n >= 0 or op != 'pwrite_all'])
def test_out_of_range_writes_refused_and_change_nothing(tmp_path, op, offset, length):
    path = tmp_path / 'target'
    path.write_bytes(b'\x5a' * 16384)
    fd = os.open(path, os.O_RDWR)
    try:
        with pytest.raises(LvdiffError, match='refusing to write bytes .* outside 0 to 2\\*\\*63-1'):
            if op == 'discard':
                discard(fd, offset, length, False)
            elif op == 'write_zeros':
                write_zeros(fd, offset, length)
            else:
                pwrite_all(fd, b'\x01' * length, offset)
    finally:
        os.close(fd)
    assert path.read_bytes() == b'\x5a' * 16384


def test_in_range_discard_and_writes_still_work(tmp_path):
    path = tmp_path / 'target'
    path.write_bytes(b'\x5a' * 16384)
    fd = os.open(path, os.O_RDWR)
    try:
        discard(fd, 4096, 4096, False)
        write_zeros(fd, 0, 1024)
        pwrite_all(fd, b'ab', 16382)
        discard(fd, 0, 0, False)
    finally:
        os.close(fd)
    assert path.read_bytes() == bytes(1024) + b'\x5a' * 3072 + bytes(4096) + b'\x5a' * 8190 + b'ab'

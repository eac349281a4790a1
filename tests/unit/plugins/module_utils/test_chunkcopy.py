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

"""Lifecycles owned by whoever opens them (issue 10, point 1): Plan and the readers are context
managers, and the one buffer-filling loop stops at a short stream's end."""
import io

from ansible_collections.lvdiff.thin.plugins.module_utils._chunkcopy import fill
from ansible_collections.lvdiff.thin.plugins.module_utils._plan import Plan


class Trickle(io.RawIOBase):
    """A pipe-like stream that gives at most 3 bytes per read."""

    def __init__(self, data):
        self._data = data

    def readable(self):
        return True

    def readinto(self, view):
        n = min(3, len(view), len(self._data))
        view[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


def test_plan_is_a_context_manager_that_closes_its_spool():
    with Plan(4096, 8 * 4096) as plan:
        plan.add_mapped([(0, 2)])
        assert not plan._spool.closed
    assert plan._spool.closed


def test_fill_reads_until_full_or_the_end():
    buf = bytearray(10)
    assert fill(Trickle(b'abcdefghijkl'), memoryview(buf)) == 10
    assert bytes(buf) == b'abcdefghij'
    buf = bytearray(10)
    assert fill(Trickle(b'abcdefg'), memoryview(buf)) == 7
    assert bytes(buf[:7]) == b'abcdefg'
    buf = bytearray(b'xy' + bytes(4))
    assert fill(Trickle(b'zw'), memoryview(buf), 2) == 4
    assert bytes(buf[:4]) == b'xyzw'

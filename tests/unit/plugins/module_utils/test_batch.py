"""_batch.each: results in the items' order, one item's failure is that item's result (with the error's
details, never a traceback), the others are done; jobs > 1 really overlaps items, bounded."""
from __future__ import annotations

import threading
import time

from ansible_collections.lvdiff.thin.plugins.module_utils import _batch
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import CommandError, LvdiffError


def work(item):
    if item == 'bad':
        raise LvdiffError('bad item', resumed_from=4096, stderr='why', ignored=object())
    if item == 'os':
        raise FileNotFoundError(2, 'No such file or directory', '/x/y')
    if item == 'bug':
        raise KeyError('k')
    return {'item': item}


def test_order_and_isolation():
    got = _batch.each(['a', 'bad', 'os', 'bug', 'b'], work, jobs=1)
    assert got[0] == {'item': 'a', 'failed': False} and got[4] == {'item': 'b', 'failed': False}
    assert got[1] == {'failed': True, 'msg': 'bad item', 'resumed_from': 4096, 'stderr': 'why'}
    assert got[2] == {'failed': True, 'msg': 'No such file or directory: /x/y'}
    assert got[3]['failed'] and got[3]['msg'].startswith('unexpected KeyError')


def test_threads_overlap_and_keep_order():
    running, peak, lock = [0], [0], threading.Lock()

    def slow(item):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return work(item)

    got = _batch.each(['a', 'bad', 'c', 'd', 'e', 'f'], slow, jobs=3)
    assert [g.get('item') for g in got] == ['a', None, 'c', 'd', 'e', 'f']
    assert peak[0] == 3


def test_jobs_bounded_and_empty():
    assert _batch.each([], work, jobs=99) == []
    assert _batch.MAX_JOBS == 16
    assert _batch.failure(CommandError('lvs failed', rc=5))['rc'] == 5


def test_stop_on_signal_sets_the_event_then_runs_the_handler_before_and_is_undone():
    import os
    import signal
    seen = []
    old = signal.signal(signal.SIGHUP, lambda signum, frame: seen.append(signum))
    try:
        stop = threading.Event()
        with _batch.stop_on_signal(stop):
            os.kill(os.getpid(), signal.SIGHUP)
            assert stop.is_set() and seen == [signal.SIGHUP]
        stop.clear()
        os.kill(os.getpid(), signal.SIGHUP)
        assert not stop.is_set() and seen == [signal.SIGHUP, signal.SIGHUP]
    finally:
        signal.signal(signal.SIGHUP, old)

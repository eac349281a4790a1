# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Many volumes in one module run (the batched modules probe, send, receive, rotate): each item is
worked on by itself, with at most ``jobs`` at a time, and one item's failure is that item's result
while the others go on. Results come back in the order of the items."""

from __future__ import annotations

import concurrent.futures
import signal

from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError, on_signals

# Bounds the threads a task can ask for: the work is I/O and LVM commands, two per core is plenty.
MAX_JOBS = 16


def failure(error):
    """The result of an item whose work raised error: the operator's message, never a traceback."""
    if isinstance(error, LvdiffError):  # with its details (e.g. a transfer's resumed_from), as run_module
        details = dict((k, v) for k, v in error.details.items() if isinstance(v, (str, int, float, list)))
        return dict(details, failed=True, msg=error.msg)
    if isinstance(error, OSError):
        where = ': %s' % error.filename if error.filename else ''
        return {'failed': True, 'msg': '%s%s' % (error.strerror or error, where)}
    return {'failed': True, 'msg': 'unexpected %s: %s' % (type(error).__name__, error)}


def each(items, work, jobs=1):
    """[work(item) for item in items], each result a dict; an item whose work raises gets
    failure(error) instead (with 'failed': False added to the others). jobs > 1 runs items in
    threads: work must then touch nothing another item touches."""
    def one(item):
        try:
            return dict(work(item), failed=False)
        except Exception as e:  # one item's failure, whatever it is, must not stop the others
            return failure(e)

    jobs = max(1, min(int(jobs), MAX_JOBS, len(items) or 1))
    if jobs == 1:
        return [one(item) for item in items]
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, items))


def stop_on_signal(stop):
    """For the block, SIGTERM/SIGHUP also set the threading.Event stop, then do what the handler before
    did (run_module's: raise Terminated in the main thread, whose item cleans up): worker threads never
    get the exception, so they look at stop before each item and step."""
    before = dict((sig, signal.getsignal(sig)) for sig in (signal.SIGTERM, signal.SIGHUP))

    def handler(signum, frame):
        stop.set()
        if callable(before.get(signum)):
            before[signum](signum, frame)
    return on_signals(handler)

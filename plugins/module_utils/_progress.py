# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""A progress file for long runs: one line of JSON (phase, bytes done of total, rate, ETA), rewritten
atomically at most once per interval while data moves, removed when the run ends. Operators follow it
with ``watch -n 2 cat FILE``; the module's result carries the final numbers.

Writing it is best effort: a progress file that cannot be written never fails the run."""

from __future__ import annotations

import datetime
import json
import os
import stat
import tempfile
import time

SUFFIX = '.progress'


def path_of(option, dest=None, check_mode=False):
    """The progress file a module writes: the option progress_file if given (an empty string: none), else
    next to dest if the module has a default one; None in check mode, which writes nothing."""
    if check_mode or option == '':
        return None
    if option is not None:
        return option
    return dest + SUFFIX if dest else None


class _NoProgress:
    """Progress's methods, doing nothing: what a None path gives, so that data paths call them
    unconditionally at the cost of an empty call."""

    path = None

    def start(self, phase, total):
        pass

    def add(self, n):
        pass

    def update(self, done):
        pass

    def flush(self):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


NO_PROGRESS = _NoProgress()


class Progress:
    """Bytes done of total in phase, written to path (None: NO_PROGRESS). The clocks are injectable for tests:
    clock (monotonic seconds) throttles and measures the rate, wall (epoch seconds) stamps 'updated'."""

    def __new__(cls, path, *args, **kwargs):
        if path is None:
            return NO_PROGRESS
        return super().__new__(cls)

    def __init__(self, path, phase, total, clock=time.monotonic, wall=time.time, interval=1.0):
        self.path = path
        self.clock, self.wall, self.interval = clock, wall, interval
        self.disabled = False
        self._written = None  # (st_dev, st_ino) of the file we last put at path
        self.start(phase, total)

    def start(self, phase, total):
        """A new phase: done back to 0; the next add or update writes at once."""
        self.phase, self.total, self.done = phase, total, 0
        self._began = self._due = self.clock()

    def add(self, n):
        self.done += n
        if self.clock() >= self._due:
            self.flush()

    def update(self, done):
        self.done = done
        if self.clock() >= self._due:
            self.flush()

    def state(self, now=None):
        """The file's content as a dict."""
        now = self.clock() if now is None else now
        elapsed = now - self._began
        rate = self.done / elapsed if elapsed > 0 else None
        total, done = self.total, self.done
        percent = eta = None
        if total is not None:
            percent = round(100.0 * done / total, 1) if total else 100.0
            if rate:
                eta = round(max(total - done, 0) / rate, 1)
        updated = datetime.datetime.fromtimestamp(self.wall(), datetime.timezone.utc)
        return {'phase': self.phase, 'done': done, 'total': total, 'percent': percent,
                'rate': None if rate is None else int(rate), 'eta_seconds': eta,
                'updated': updated.strftime('%Y-%m-%dT%H:%M:%SZ'), 'pid': os.getpid()}

    def flush(self):
        """Write the file now (and the next time one interval from now)."""
        now = self.clock()
        self._due = now + self.interval
        if self.disabled:
            return
        try:
            self._write((json.dumps(self.state(now), sort_keys=True) + '\n').encode())
        except OSError:
            self.disabled = True  # a full disk or a read-only directory: the run goes on without it

    def _write(self, data):
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISREG(st.st_mode):
            self.disabled = True  # a symlink, a FIFO, a directory: not ours to replace
            return
        directory = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix='.%s.' % os.path.basename(self.path), suffix='.tmp')
        try:
            try:
                os.fchmod(fd, 0o600)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                written = os.fstat(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)  # renames onto the name: never writes through a symlink
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        self._written = (written.st_dev, written.st_ino)

    def close(self):
        """Remove the file, if it is still the one we wrote."""
        if self._written is None:
            return
        try:
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == self._written:
                os.unlink(self.path)
        except OSError:
            pass
        self._written = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

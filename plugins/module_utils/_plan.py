# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""What a diff must contain: coalesced DATA/DISCARD extents, and which base ranges
to check at each checksum level.

Extents are spooled to an anonymous temporary file (16 bytes each), so memory
does not grow with the number of changes; the plan is walked once for the base
checks and once for the data.
"""

from __future__ import annotations

import itertools
import random
import struct
import tempfile

from ansible_collections.lvdiff.thin.plugins.module_utils._chunkcopy import MAX_EXTENT, Closing

DATA, DISCARD = 'data', 'discard'
# Kinds of thin_delta runs, with --snap1 BASE --snap2 SOURCE (what _thinmeta's parser yields).
SAME, DIFFERENT, BASE_ONLY, SOURCE_ONLY = 'same', 'different', 'left_only', 'right_only'


def ceil_div(n, d):
    """n / d rounded up, for non-negative n and positive d: the chunks that n bytes touch."""
    return -(-n // d)


_ENTRY = struct.Struct('<QQ')  # begin chunk, then length in chunks with the action in the top bit
_DISCARD_BIT = 1 << 63
_BATCH = 4096


class Plan(Closing):
    """Extents in chunks, ascending and non-overlapping, adjacent ones of one action merged.

    volume_size: the source volume's size in bytes; base_size: the base's (None for
    a full image). Chunks in [base_size, volume_size) are sent whatever thin_delta says
    of them: the target's base may hold stale mappings past its end, so there every
    chunk the source maps is DATA and every other chunk DISCARD.
    """

    def __init__(self, chunk_size, volume_size, base_size=None):
        if chunk_size <= 0 or chunk_size % 512:
            raise ValueError('chunk size must be a positive multiple of 512, not %r' % chunk_size)
        self.chunk_size = chunk_size
        self.volume_size = volume_size
        self.base_size = base_size
        self.nr_chunks = ceil_div(volume_size, chunk_size)
        self._tail = self.nr_chunks if base_size is None else min(ceil_div(base_size, chunk_size), self.nr_chunks)
        self._spool = tempfile.TemporaryFile()
        self._buf = []
        self._pending = None  # [action, begin, length]
        self._cursor = 0      # first chunk not yet planned
        self.finished = False
        self.data_chunks = self.discard_chunks = 0
        self.data_bytes = self.discard_bytes = 0
        self.extents = 0

    # -- building --
    def _put(self, action, begin, length):
        end = min(begin + length, self.nr_chunks)
        if end <= begin:
            return
        length = end - begin
        p = self._pending
        if p is not None and p[0] == action and p[1] + p[2] == begin:
            p[2] += length
            return
        if p is not None:
            self._store(*p)
        self._pending = [action, begin, length]

    def _store(self, action, begin, length):
        nbytes = min((begin + length) * self.chunk_size, self.volume_size) - begin * self.chunk_size
        if action == DATA:
            self.data_chunks += length
            self.data_bytes += nbytes
        else:
            self.discard_chunks += length
            self.discard_bytes += nbytes
        self.extents += 1
        self._buf.append(_ENTRY.pack(begin, length | (_DISCARD_BIT if action == DISCARD else 0)))
        if len(self._buf) >= _BATCH:
            self._spool.write(b''.join(self._buf))
            self._buf = []

    def _fill_tail_gap(self, upto):
        """Unplanned chunks past the base's end are discarded on the target."""
        start = max(self._cursor, self._tail)
        if upto > start:
            self._put(DISCARD, start, upto - start)

    def add(self, action, begin, length):
        """Add an extent of chunks; extents must come in ascending order."""
        if begin < self._cursor:
            raise ValueError('plan extents must ascend: %d after %d' % (begin, self._cursor))
        self._fill_tail_gap(begin)
        self._put(action, begin, length)
        self._cursor = max(self._cursor, begin + length)

    def add_delta(self, runs):
        """Add thin_delta runs (kind, begin, length) taken with --snap1 BASE --snap2 SOURCE."""
        tail = self._tail
        for kind, begin, length in runs:
            if kind == DIFFERENT or kind == SOURCE_ONLY:
                self.add(DATA, begin, length)
            elif kind == BASE_ONLY:
                self.add(DISCARD, begin, length)
            elif kind == SAME:
                if begin + length > tail:  # shared with a stale base mapping past its end
                    start = max(begin, tail)
                    self.add(DATA, start, begin + length - start)
            else:
                raise ValueError('unknown delta kind %r' % (kind,))
        return self.finish()

    def add_mapped(self, runs):
        """Add the mapped runs (begin, length) of a full image."""
        for begin, length in runs:
            self.add(DATA, begin, length)
        return self.finish()

    def finish(self):
        self._fill_tail_gap(self.nr_chunks)
        if self._pending is not None:
            self._store(*self._pending)
            self._pending = None
        if self._buf:
            self._spool.write(b''.join(self._buf))
            self._buf = []
        self._spool.flush()
        self.finished = True
        return self

    def close(self):
        self._spool.close()

    # -- reading --
    def chunk_extents(self):
        """Yield (action, begin_chunk, length_chunks)."""
        if not self.finished:
            raise ValueError('plan not finished')
        self._spool.seek(0)
        while True:
            block = self._spool.read(_ENTRY.size * _BATCH)
            if not block:
                return
            for begin, length in _ENTRY.iter_unpack(block):
                if length & _DISCARD_BIT:
                    yield DISCARD, begin, length & ~_DISCARD_BIT
                else:
                    yield DATA, begin, length

    def byte_extents(self, max_len=MAX_EXTENT):
        """Yield (action, offset, length) in bytes, clipped to the volume, DATA split at max_len."""
        cs, size = self.chunk_size, self.volume_size
        for action, begin, length in self.chunk_extents():
            off = begin * cs
            end = min((begin + length) * cs, size)
            if action == DISCARD:
                yield action, off, end - off
                continue
            while off < end:
                n = min(max_len, end - off)
                yield action, off, n
                off += n

    # -- base checks --
    def base_chunks(self):
        """Yield (begin, length) runs of base chunks the diff overwrites or discards."""
        for action, begin, length in self.chunk_extents():
            if begin >= self._tail:
                return
            yield begin, min(begin + length, self._tail) - begin

    @property
    def base_chunk_count(self):
        return sum(length for begin, length in self.base_chunks())

    def base_checks(self, level, seed=0, max_len=MAX_EXTENT):
        """Yield (offset, length) byte ranges of the base to checksum, ascending.

        0: none. 1: the first base chunk the diff touches. 2: a seeded sample spread
        evenly over the touched base chunks (jittered strata: 64 chunks plus 1 in 128,
        always the first and the last). 3: every touched base chunk, coalesced up to max_len.
        """
        if self.base_size is None or level == 0:
            return
        cs, size = self.chunk_size, self.base_size
        if level == 1:
            for begin, length in self.base_chunks():
                yield begin * cs, min((begin + 1) * cs, size) - begin * cs
                return
        elif level == 2:
            for chunk in self._sample(seed):
                yield chunk * cs, min((chunk + 1) * cs, size) - chunk * cs
        elif level == 3:
            for begin, length in self.base_chunks():
                off, end = begin * cs, min((begin + length) * cs, size)
                while off < end:
                    n = min(max_len, end - off)
                    yield off, n
                    off += n
        else:
            raise ValueError('checksum level must be 0 to 3, not %r' % (level,))

    def _sample(self, seed):
        total = self.base_chunk_count
        if total == 0:
            return
        k = min(total, 64 + total // 128)
        rng = random.Random(seed)
        # Stratum j contributes one ordinal in [j*total/k, (j+1)*total/k): ascending, lazily.
        ordinals = (int((j + rng.random()) * total / k) for j in range(k))
        wanted = _dedup(itertools.chain([0], ordinals, [total - 1]))
        want = next(wanted, None)  # never None: wanted starts with 0
        seen = 0
        for begin, length in self.base_chunks():
            while want is not None and want < seen + length:
                yield begin + (want - seen)
                want = next(wanted, None)
            if want is None:
                return
            seen += length


def _dedup(ascending):
    last = None
    for x in ascending:
        if x != last:
            yield x
            last = x

"""Sparse files acting as thin volumes for the data-path benchmarks.

A scenario is a source and a base of the same size, sparse, with real (random) data
only in the changed chunks (different data in each), and the list of changed runs,
as thin_delta would report them: scattered runs of 1 to 2*mean-1 chunks.
"""

from __future__ import annotations

import json
import os
import random

import _common

_POOL_SIZE = 64 << 20


def changed_runs(nr_chunks, fraction, mean_run, seed):
    """Ascending (begin, length) runs covering about fraction of nr_chunks."""
    rng = random.Random('%d/%g/%d/%s' % (nr_chunks, fraction, mean_run, seed))
    gap_mean = max(0.0, mean_run * (1 - fraction) / fraction - 1)  # every gap is 1 + this on average
    runs = []
    pos = 0
    while True:
        pos += int(rng.random() * (2 * gap_mean + 1))
        length = 1 + int(rng.random() * (2 * mean_run - 1))
        if pos >= nr_chunks:
            break
        length = min(length, nr_chunks - pos)
        runs.append((pos, length))
        pos += length + 1  # a gap of at least one chunk keeps runs apart, as thin_delta prints them
    return runs


class Scenario:
    def __init__(self, directory, size, chunk_size, fraction, mean_run, seed=1):
        self.dir = directory
        self.size = size
        self.chunk_size = chunk_size
        self.fraction = fraction
        self.nr_chunks = size // chunk_size
        self.runs = changed_runs(self.nr_chunks, fraction, mean_run, seed)
        self.changed_chunks = sum(n for _b, n in self.runs)
        self.changed_bytes = self.changed_chunks * chunk_size
        self.seed = seed
        self.src = os.path.join(directory, 'src.img')
        self.base = os.path.join(directory, 'base.img')
        self.runs_path = os.path.join(directory, 'runs.json')

    @property
    def label(self):
        return '%s, %s chunks, %g%% changed' % (_size(self.size), _size(self.chunk_size), self.fraction * 100)

    def build(self):
        os.makedirs(self.dir, exist_ok=True)
        pool = random.Random(self.seed).randbytes(_POOL_SIZE)
        cs = self.chunk_size
        for path, salt in ((self.src, 1), (self.base, 2)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.ftruncate(fd, self.size)
                view = memoryview(pool)
                k = salt * 7919
                for begin, length in self.runs:
                    off, end = begin * cs, (begin + length) * cs
                    while off < end:
                        n = min(end - off, 4 << 20)
                        start = (k * 65536) % (_POOL_SIZE - n)
                        os.pwrite(fd, view[start:start + n], off)
                        off += n
                        k += 1
            finally:
                os.close(fd)
        with open(self.runs_path, 'w') as f:
            json.dump(self.runs, f)

    def same_as_source(self, path):
        """True if path holds the source's data in every changed run."""
        cs = self.chunk_size
        with open(path, 'rb') as a, open(self.src, 'rb') as b:
            for begin, length in self.runs:
                off, n = begin * cs, length * cs
                if os.pread(a.fileno(), n, off) != os.pread(b.fileno(), n, off):
                    return False
        return os.path.getsize(path) == self.size

    def remove(self):
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)


def _size(n):
    for unit, div in (('GiB', _common.GiB), ('MiB', _common.MiB), ('KiB', 1024)):
        if n >= div and n % div == 0:
            return '%d %s' % (n // div, unit)
    return '%d B' % n

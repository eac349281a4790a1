"""Sparse files that act as thin volumes in unit tests, with the truth of what changed: built
chunk by chunk (VolumePair), or from a pool that tests/support/thinpool.py generates and the real
thin_restore writes (build, materialize)."""

import hashlib
import os
import random

from ansible_collections.lvdiff.thin.plugins.module_utils._codec import DiffHeader
from ansible_collections.lvdiff.thin.tests.support import thinpool

CS = 4096  # chunk size of the unit tests' volumes: the logic does not depend on the scale


def chunk_pattern(tag, chunk_size):
    """Recognisable, incompressible-enough content for one chunk."""
    seed = hashlib.sha256(repr(tag).encode()).digest()
    return (seed * (chunk_size // len(seed) + 1))[:chunk_size]


class VolumePair:
    """A base and a source volume (sparse files) built chunk by chunk, plus the
    thin_delta runs that describe them (kinds as thin_delta --snap1 BASE --snap2 SOURCE).

    base_map / src_map: {chunk: tag}; a tag stands for a pool data block, so equal tags
    mean a shared block ('same'), different tags 'different'.
    """

    def __init__(self, tmp_path, chunk_size, base_map, src_map, base_chunks, src_chunks, content=None):
        self.cs = chunk_size
        self.content = content or chunk_pattern  # content(tag, chunk_size): the bytes of a chunk
        self.base_map = base_map
        self.src_map = src_map
        self.base_size = base_chunks * chunk_size
        self.src_size = src_chunks * chunk_size
        self.base = str(tmp_path / 'base.img')
        self.src = str(tmp_path / 'src.img')
        self._write(self.base, base_map, self.base_size)
        self._write(self.src, src_map, self.src_size)

    def _write(self, path, mapping, size):
        with open(path, 'wb') as f:
            f.truncate(size)
            for chunk, tag in sorted(mapping.items()):
                if (chunk + 1) * self.cs <= size:
                    f.seek(chunk * self.cs)
                    f.write(self.content(tag, self.cs))

    def delta(self):
        """The runs thin_delta would print: adjacent chunks of one kind merged."""
        runs = []
        for chunk in sorted(set(self.base_map) | set(self.src_map)):
            b, s = self.base_map.get(chunk), self.src_map.get(chunk)
            kind = ('same' if b == s else 'different') if b is not None and s is not None else (
                'left_only' if s is None else 'right_only')
            if runs and runs[-1][0] == kind and runs[-1][1] + runs[-1][2] == chunk:
                runs[-1][2] += 1
            else:
                runs.append([kind, chunk, 1])
        return [tuple(r) for r in runs]

    def mapped(self, mapping):
        runs = []
        for chunk in sorted(mapping):
            if runs and runs[-1][0] + runs[-1][1] == chunk:
                runs[-1][1] += 1
            else:
                runs.append([chunk, 1])
        return [tuple(r) for r in runs]

    def header(self, level=2, seed=7, pairs=None, full=False):
        base = None if full else {'name': 'vol', 'uuid': 'BASE-UUID', 'thin_id': 1, 'size': self.base_size}
        return DiffHeader(volume={'name': 'snap', 'uuid': 'SRC-UUID', 'thin_id': 2, 'size': self.src_size},
                          base=base, chunk_size=self.cs, checksum_level=level, sample_seed=seed,
                          pairs=pairs or {}, created='2026-11-26T00:00:00Z')


def random_chunk(tag, chunk_size):
    """Incompressible content for one chunk, the same for the same tag."""
    return random.Random(repr(tag)).randbytes(chunk_size)


def mixed_chunk(tag, chunk_size):
    """Chunks (tags (kind, chunk number)) compressible (chunk_pattern) where even, random where odd."""
    return (random_chunk if tag[-1] % 2 else chunk_pattern)(tag, chunk_size)


CONTENTS = {'compressible': chunk_pattern, 'random': random_chunk, 'mixed': mixed_chunk}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def allocated_bytes(path):
    return os.stat(path).st_blocks * 512


def build(tmp_path, **kw):
    """(scenario, path of its metadata file): thinpool.snapshot_pair(**kw) written by thin_restore."""
    sc = thinpool.snapshot_pair(**kw)
    xml, meta = tmp_path / 'pool.xml', tmp_path / 'meta.bin'
    sc.write_xml(xml)
    sc.restore(xml, meta)
    return sc, str(meta)


def materialize(sc, dev, size_chunks, cs, path):
    """The content of thin device dev of scenario sc as a sparse file: each pool block its own pattern."""
    with open(path, 'wb') as f:
        f.truncate(size_chunks * cs)
        for o, d, n in sc.mappings(dev):
            for i in range(n):
                f.seek((o + i) * cs)
                f.write(chunk_pattern(('block', d + i), cs))

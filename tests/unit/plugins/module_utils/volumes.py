"""Sparse files that act as thin volumes in unit tests, with the truth of what changed."""

import hashlib
import os
import struct

from ansible_collections.lvdiff.thin.plugins.module_utils._codec import DiffHeader


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

    def __init__(self, tmp_path, chunk_size, base_map, src_map, base_chunks, src_chunks):
        self.cs = chunk_size
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
                    f.write(chunk_pattern(tag, self.cs))

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


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def allocated_bytes(path):
    return os.stat(path).st_blocks * 512


def u64(x):
    return struct.pack('<Q', x)


# --- taking diff files apart and putting them back together (hostile and fuzz tests) ---------

def lvdiff_records(data):
    """[type, flags, reserved, offset, length, body] of each record of a well-formed lvdiff file."""
    from ansible_collections.lvdiff.thin.plugins.module_utils import _format
    pos = _format._PREAMBLE.size
    out = []
    while pos < len(data):
        rtype, flags, reserved, body_len, offset, length = _format._HEAD.unpack_from(data, pos)
        body = bytes(data[pos + _format._HEAD.size:pos + _format._HEAD.size + body_len])
        out.append([rtype, flags, reserved, offset, length, body])
        pos += _format._HEAD.size + body_len + 4
    return out


def lvdiff_bytes(recs, preamble=None, fix_trailer=True, body_len=None):
    """A file of these records, each with a valid CRC; fix_trailer: the last record, if a
    TRAILER, is rewritten to match the records and bytes before it (what a writer would say)."""
    import json
    import zlib
    from ansible_collections.lvdiff.thin.plugins.module_utils import _format
    out = bytearray(preamble if preamble is not None else _format._PREAMBLE.pack(_format.MAGIC, 1))
    counts = {'check': 0, 'data': 0, 'discard': 0}
    sizes = {'data': 0, 'discard': 0}
    names = {_format.CHECK: 'check', _format.DATA: 'data', _format.DISCARD: 'discard'}
    for i, (rtype, flags, reserved, offset, length, body) in enumerate(recs):
        if fix_trailer and rtype == _format.TRAILER and i == len(recs) - 1:
            body = json.dumps({'records': counts, 'data_bytes': sizes['data'], 'discard_bytes': sizes['discard'],
                               'sha1': hashlib.sha1(out).hexdigest()}, sort_keys=True, separators=(',', ':')).encode()
        if rtype in names:
            counts[names[rtype]] += 1
            if rtype != _format.CHECK:
                sizes[names[rtype]] += length
        head = _format._HEAD.pack(rtype, flags, reserved, len(body), offset, length)
        out += head + body + _format._CRC.pack(zlib.crc32(body, zlib.crc32(head)))
    return bytes(out)

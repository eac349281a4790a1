"""Diff files for the tests: written from a VolumePair as the lvdiff module writes them
(make_diff), laid out as the Go lvdiff writes HyperLayer files (go_hyperlayer), or taken apart into
records and put back together with valid CRCs (lvdiff_records, lvdiff_bytes)."""

import hashlib
import json
import os
import zlib

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _format
from ansible_collections.lvdiff.thin.plugins.module_utils._plan import Plan


def make_diff(pair, out, fmt='lvdiff', level=2, full=False, pairs=None, seed=7):
    """Write the diff of pair to the file out as lvdiff does (_diffio.write_diff_file)."""
    header = pair.header(level=level, pairs=pairs, full=full, seed=seed)
    with Plan(pair.cs, pair.src_size, None if full else pair.base_size) as plan:
        if full:
            plan.add_mapped(pair.mapped(pair.src_map))
        else:
            plan.add_delta(pair.delta())
        src = os.open(pair.src, os.O_RDONLY)
        base = os.open(pair.base, os.O_RDONLY)
        try:
            return _diffio.write_diff_file(out, header, plan, src, base, fmt)
        finally:
            os.close(src)
            os.close(base)


def go_hyperlayer(pair, pairs_text, hexcase='upper', crc_case='lower', level=2, truncate=None):
    """Bytes of a HYPERLAYER/1.0 file laid out exactly as the Go lvdiff writes it."""
    cs = pair.cs
    changed = sorted(c for c in set(pair.base_map) | set(pair.src_map)
                     if pair.base_map.get(c) != pair.src_map.get(c))
    fmt = '%X' if hexcase == 'upper' else '%x'
    crcfmt = '%x' if crc_case == 'lower' else '%X'
    spc = cs // 512
    lines = ['HYPERLAYER/1.0', 'Name: snap', 'Volume size: %d' % pair.src_size, 'Chunk size: %d' % cs,
             'Delta blocks: %d' % len(changed), 'VolumeUUID: SRC-UUID', 'Detect level: %d' % level,
             'Backing volumeUUID: BASE-UUID'] + pairs_text
    out = ('\n'.join(lines) + '\n\n').encode()
    with open(pair.base, 'rb') as f:
        base = f.read()
    with open(pair.src, 'rb') as f:
        src = f.read()
    first = changed[0]
    crc = zlib.crc32(base[first * cs:(first + 1) * cs])
    out += ('D %s %s CRC32 %s\n\n' % (fmt % (first * spc), fmt % spc, crcfmt % crc)).encode()
    for c in changed:
        out += ('W %s %s\n' % (fmt % (c * spc), fmt % spc)).encode() + src[c * cs:(c + 1) * cs] + b'\n'
    return out[:truncate] if truncate else out


# --- taking diff files apart and putting them back together (hostile and fuzz tests) ---------

def lvdiff_records(data):
    """[type, flags, reserved, offset, length, body] of each record of a well-formed lvdiff file."""
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


def flip_first_data_byte(path):
    """Flip the first byte of the first DATA record's body of the lvdiff file path: (its record index, file
    offset, volume offset, length)."""
    with open(path, 'rb') as f:
        data = f.read()
    pos = 12  # the preamble
    for index, (rtype, flags, reserved, offset, length, body) in enumerate(lvdiff_records(data)):
        if rtype == ord('D'):
            with open(path, 'r+b') as f:
                f.seek(pos + 24)
                f.write(bytes([data[pos + 24] ^ 0x40]))
            return index, pos, offset, length
        pos += 24 + len(body) + 4

"""Diff files for the tests: written from a VolumePair as the lvdiff module writes them
(make_diff), laid out as the Go lvdiff writes HyperLayer files (go_hyperlayer), or taken apart into
records and put back together with valid CRCs (lvdiff_records, lvdiff_bytes)."""

import hashlib
import io
import json
import os
import struct
import zlib

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _format, _seal
from ansible_collections.lvdiff.thin.plugins.module_utils._plan import Plan


def make_diff(pair, out, fmt='lvdiff', level=2, full=False, pairs=None, seed=7, compress_level=None, key=None):
    """Write the diff of pair to the file out as lvdiff does (_diffio.write_diff_file); compress_level and
    key: a version 2 file."""
    header = pair.header(level=level, pairs=pairs, full=full, seed=seed)
    with Plan(pair.cs, pair.src_size, None if full else pair.base_size) as plan:
        if full:
            plan.add_mapped(pair.mapped(pair.src_map))
        else:
            plan.add_delta(pair.delta())
        src = os.open(pair.src, os.O_RDONLY)
        base = os.open(pair.base, os.O_RDONLY)
        try:
            return _diffio.write_diff_file(out, header, plan, src, base, fmt, compress_level=compress_level, key=key)
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


def lvdiff_bytes(recs, preamble=None, fix_trailer=True, seal=None, trailer_seal=None):
    """A file of these records, each with a valid CRC; fix_trailer: the last record, if a
    TRAILER, is rewritten to match the records and bytes before it (what a writer would say).
    preamble: the file's first 12 bytes (default: version 1). seal (a _seal.Seal): the records hold
    plaintext payloads (open_records), sealed here as a writer seals them, each at its index; without
    one, bodies are kept as they are, and a sealed TRAILER rewritten keeps its old tag, or gets the
    tag of trailer_seal."""
    out = bytearray(preamble if preamble is not None else _format._PREAMBLE.pack(_format.MAGIC, 1))
    version = struct.unpack_from('<I', out, 8)[0]
    counts = {'check': 0, 'data': 0, 'discard': 0}
    sizes = {'data': 0, 'discard': 0, 'stored': 0}
    names = {_format.CHECK: 'check', _format.DATA: 'data', _format.DISCARD: 'discard'}
    for i, (rtype, flags, reserved, offset, length, body) in enumerate(recs):
        tag_len = _seal.TAG if flags & _format.SEALED and seal is None else 0
        if fix_trailer and rtype == _format.TRAILER and i == len(recs) - 1:
            trailer = {'records': counts, 'data_bytes': sizes['data'], 'discard_bytes': sizes['discard'],
                       'sha1': hashlib.sha1(out).hexdigest()}
            if version == 2:
                trailer['stored_data_bytes'] = sizes['stored']
            text = json.dumps(trailer, sort_keys=True, separators=(',', ':')).encode()
            body = text + (body[-tag_len:] if tag_len else b'')
            if trailer_seal is not None:
                head = _format._HEAD.pack(rtype, flags, reserved, len(body), offset, length)
                body = text + trailer_seal.tag(i, head, text)
        if rtype in names:
            counts[names[rtype]] += 1
            if rtype != _format.CHECK:
                sizes[names[rtype]] += length
            if rtype == _format.DATA:
                sizes['stored'] += len(body) - tag_len
        elif rtype == _format.GROUP and len(body) >= 4:  # as a writer counts it: the table's ranges as data
            table = group_table_len(body)
            counts['data'] += struct.unpack_from('<I', body)[0]
            counts['group'] = counts.get('group', 0) + 1
            sizes['data'] += length
            sizes['stored'] += len(body) - tag_len - table
        if seal is not None:
            flags |= _format.SEALED
            head = _format._HEAD.pack(rtype, flags, reserved, len(body) + _seal.TAG, offset, length)
            aad = bytes(out[:12]) + head if i == 0 else head
            if rtype == _format.GROUP:
                table = group_table_len(body)
                body = bytes(body[:table]) + seal.encrypt(i, head + bytes(body[:table]), body[table:])
            else:
                body = seal.encrypt(i, aad, body) if rtype in (_format.CHECK, _format.DATA) else (
                    bytes(body) + seal.tag(i, aad, body))
        else:
            head = _format._HEAD.pack(rtype, flags, reserved, len(body), offset, length)
        out += head + body + _format._CRC.pack(zlib.crc32(body, zlib.crc32(head)))
    return bytes(out)


def group_table_len(body):
    """The size of a GROUP body's range table, as its count says (at most the body: a mutated one may be
    short)."""
    if len(body) < 4:
        return len(body)
    return min(len(body), 4 + 16 * struct.unpack_from('<I', body)[0])


def group_ranges(body):
    """[(offset, length)] of a GROUP body's range table."""
    return [struct.unpack_from('<QQ', body, 4 + 16 * i) for i in range(struct.unpack_from('<I', body)[0])]


def file_seal(data, key):
    """The _seal.Seal of the encrypted lvdiff file data, made with key."""
    header = _diffio.open_reader(io.BytesIO(data)).header
    return _seal.Seal(header.encryption['algorithm'],
                      _seal.record_key_for_reading(key, header.encryption, 'the test file'))


def open_records(data, seal):
    """lvdiff_records of an encrypted file, with plaintext payloads (tags checked): for lvdiff_bytes(seal=...)."""
    recs = lvdiff_records(data)
    for i, rec in enumerate(recs):
        head = _format._HEAD.pack(rec[0], rec[1], rec[2], len(rec[5]), rec[3], rec[4])
        aad = data[:12] + head if i == 0 else head
        if rec[0] == _format.GROUP:
            table = group_table_len(rec[5])
            rec[5] = rec[5][:table] + seal.decrypt(i, head + rec[5][:table], rec[5][table:])
        elif rec[0] in (_format.CHECK, _format.DATA):
            rec[5] = seal.decrypt(i, aad, rec[5])
        else:
            seal.check_tag(i, aad, rec[5][:-_seal.TAG], rec[5][-_seal.TAG:])
            rec[5] = rec[5][:-_seal.TAG]
    return recs


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

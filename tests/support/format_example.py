"""The worked example of docs/format.md ("Version 2: a worked example"): a small real file, written by
our writer with the documented test key and fixed salts, annotated in hex. The unit test
test_format_example checks that the page shows exactly this; after a change, print it anew with

    PYTHONPATH=tests/output/collections .venv/bin/python -m ansible_collections.lvdiff.thin.tests.support.format_example

(both examples: the first, then the GROUP one)
"""

import hashlib
import io
import os
import struct
import tempfile

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _format, _seal
from ansible_collections.lvdiff.thin.plugins.module_utils._codec import DiffHeader
from ansible_collections.lvdiff.thin.plugins.module_utils._plan import Plan

MIB, CHUNK = 1 << 20, 64 << 10
KEY_HEX = bytes(range(32)).hex()   # the test key: bytes 00 to 1f
FILE_SALT = bytes(range(0x40, 0x50))
BEGIN, END = '<!-- format-example begin -->', '<!-- format-example end -->'
# The second example: two changed chunks with none between, which the writer gathers into a GROUP record.
GROUP_BEGIN, GROUP_END = '<!-- format-example-group begin -->', '<!-- format-example-group end -->'


def example_file(group=False):
    """(bytes of the example file, the Key it was written with); group: the second example (chunks 0 and 2
    changed, one GROUP record)."""
    with tempfile.TemporaryDirectory() as tmp:
        key_path = os.path.join(tmp, 'example.key')
        with open(key_path, 'w') as f:
            f.write(KEY_HEX + '\n')
        os.chmod(key_path, 0o600)
        key = _seal.Key.from_file(key_path).with_fixed_salts(FILE_SALT)
        base, src = os.path.join(tmp, 'base'), os.path.join(tmp, 'src')
        for path, chunks in ((base, {0: b'the base volume, chunk 0\n', 3: b'chunk 3, later discarded\n'}),
                             (src, {0: b'lvdiff.thin format 2 example\n'} if not group else
                              {0: b'lvdiff.thin format 2 example\n', 2: b'a second changed chunk\n'})):
            with open(path, 'wb') as f:
                f.truncate(MIB)
                for chunk, line in chunks.items():
                    f.seek(chunk * CHUNK)
                    f.write((line * (CHUNK // len(line) + 1))[:CHUNK])
        header = DiffHeader(volume={'name': 'example', 'uuid': 'EXAMPLE-VOLUME-UUID', 'thin_id': 2, 'size': MIB},
                            base={'name': 'example-base', 'uuid': 'EXAMPLE-BASE-UUID', 'thin_id': 1, 'size': MIB},
                            chunk_size=CHUNK, checksum_level=1, sample_seed=0, created='2026-12-01T00:00:00Z',
                            tool='lvdiff.thin 0.1.0')
        plan = Plan(CHUNK, MIB, MIB).add_delta([('different', 0, 1)] + ([('different', 2, 1)] if group else [])
                                               + [('left_only', 3, 1)])
        out = os.path.join(tmp, 'example.diff')
        fds = [os.open(p, os.O_RDONLY) for p in (src, base)]
        try:
            _diffio.write_diff_file(out, header, plan, fds[0], fds[1], compress_level=3, key=key)
        finally:
            for fd in fds:
                os.close(fd)
        with open(out, 'rb') as f:
            return f.read(), key


def _hex_lines(offset, data, first_note, ascii_column=False):
    lines = []
    for i in range(0, len(data), 16):
        piece = data[i:i + 16]
        note = first_note if i == 0 else ''
        if ascii_column:
            note = ''.join(chr(b) if 32 <= b < 127 else '.' for b in piece)
        lines.append(('%06x  %-47s  %s' % (offset + i, ' '.join('%02x' % b for b in piece), note)).rstrip())
    return lines


def annotated(data, first=0):
    """The annotated hex of data, as docs/format.md shows it; the key derivation redone step by step. first:
    records before it are left out (the second example shares them with the first)."""
    names = {'H': 'HEADER', 'C': 'CHECK', 'D': 'DATA', 'Z': 'DISCARD', 'T': 'TRAILER', 'G': 'GROUP'}
    header = _diffio.open_reader(io.BytesIO(data)).header
    enc = header.encryption
    master = bytes.fromhex(KEY_HEX)
    record_key = _seal.hkdf_sha256(master, bytes.fromhex(enc['file_salt']), b'lvdiff.thin v2 record key')
    seal = _seal.Seal(enc['algorithm'], record_key)
    out = ['master key    %s  (key file: these 64 hex digits and a newline)' % KEY_HEX,
           'key_id        %s  (HMAC-SHA256(master key, "lvdiff.thin key id"), first 16 bytes)' % _seal.key_id(master),
           'file_salt     %s' % enc['file_salt'],
           'record key    %s' % record_key.hex(),
           '              (HKDF-SHA256(ikm = master key, salt = file_salt, info = "lvdiff.thin v2 record key"))',
           '',
           'offset  bytes                                            meaning']
    out += _hex_lines(0, data[:8], 'magic "\\x89LVDIFF\\n"')
    out += _hex_lines(8, data[8:12], 'version 2 (u32 little-endian)')
    pos = 12
    if first:
        out = ['offset  bytes                                            meaning',
               '000000  the preamble and records 0 to %d: byte for byte those of the first example' % (first - 1)]
    for index, (rtype, flags, reserved, offset, length, body) in enumerate(_format_records(data)):
        letter = chr(rtype)
        head = data[pos:pos + 24]
        if index < first:
            pos += 28 + len(body)
            continue
        flag_names = ' | '.join(n for bit, n in ((1, 'COMPRESSED'), (2, 'SEALED')) if flags & bit) or 'none'
        out.append('')
        out.append('        record %d: %s, nonce %s, AAD %s' % (
            index, names[letter], _seal.nonce(index).hex(),
            'preamble || head' if index == 0 else 'its head || its range table' if letter == 'G' else 'its head'))
        out += _hex_lines(pos, head[:8], "type '%s', flags 0x%02x (%s), reserved 0, body_len %d"
                          % (letter, flags, flag_names, len(body)))
        out += _hex_lines(pos + 8, head[8:], 'offset %d, length %d' % (offset, length))
        payload, tag = body[:-16], body[-16:]
        at = pos + 24
        aad = (data[:12] + head) if index == 0 else head
        if letter in 'HT':
            out.append('        %s JSON, %d bytes, plaintext:' % (names[letter], len(payload)))
            out += _hex_lines(at, payload, '', ascii_column=True)
        elif letter in 'CD':
            plain = seal.decrypt(index, aad, body)
            what = 'SHA-256 of the base range' if letter == 'C' else (
                'one zstd frame of %d bytes, content size %d' % (len(plain), length) if flags & 1 else 'the data')
            out += _hex_lines(at, payload, 'ciphertext of %s:' % what)
            out += ['        plaintext: ' + line for line in _plain_lines(plain)]
        elif letter == 'G':
            count = struct.unpack_from('<I', body)[0]
            table_len = 4 + 16 * count
            out += _hex_lines(at, body[:4], 'range table (plaintext): %d ranges (u32)' % count)
            for k in range(count):
                r_offset, r_length = struct.unpack_from('<QQ', body, 4 + 16 * k)
                out += _hex_lines(at + 4 + 16 * k, body[4 + 16 * k:20 + 16 * k],
                                  'range %d: offset %d, length %d (u64, u64)' % (k, r_offset, r_length))
            plain = seal.decrypt(index, head + body[:table_len], body[table_len:])
            out += _hex_lines(at + table_len, body[table_len:-16], 'ciphertext of one zstd frame of %d bytes, '
                              'content size %d (the ranges\' bytes in order)' % (len(plain), length))
            out += ['        plaintext: ' + line for line in _plain_lines(plain)]
        if len(body):
            out += _hex_lines(at + len(payload), tag, 'tag')
        crc = data[at + len(body):at + len(body) + 4]
        out += _hex_lines(at + len(body), crc, 'CRC-32 of head and body: %08x' % struct.unpack('<I', crc)[0])
        pos = at + len(body) + 4
    out.append('')
    out.append('%06x  end of file: %d bytes, SHA-1 %s' % (pos, len(data), hashlib.sha1(data).hexdigest()))
    return '\n'.join(out)


def _plain_lines(plain):
    text = ' '.join('%02x' % b for b in plain)
    return [text[i:i + 16 * 3].rstrip() for i in range(0, len(text), 16 * 3)]


def _format_records(data):
    pos = 12
    while pos < len(data):
        rtype, flags, reserved, body_len, offset, length = _format._HEAD.unpack_from(data, pos)
        yield rtype, flags, reserved, offset, length, data[pos + 24:pos + 24 + body_len]
        pos += 28 + body_len


def doc_block(group=False):
    """What docs/format.md holds between BEGIN and END (group: GROUP_BEGIN and GROUP_END)."""
    data, key = example_file(group)
    begin, end = (GROUP_BEGIN, GROUP_END) if group else (BEGIN, END)
    if group:
        one, dummy = example_file()
        first = [r[0] for r in _format_records(data)].index(_format.GROUP)
        assert data[:_record_end(data, first)] == one[:_record_end(one, first)]  # what "byte for byte" says
        return '%s\n```\n%s\n```\n%s' % (begin, annotated(data, first), end)
    return '%s\n```\n%s\n```\n%s' % (begin, annotated(data), end)


def _record_end(data, n):
    """The file offset where record n begins."""
    pos = 12
    for index, (rtype, flags, reserved, offset, length, body) in enumerate(_format_records(data)):
        if index == n:
            return pos
        pos += 28 + len(body)
    return pos


if __name__ == '__main__':
    print(doc_block())
    print()
    print(doc_block(group=True))

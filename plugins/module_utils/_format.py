# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The lvdiff diff format, versions 1 and 2 (specified in docs/format.md); the header model and
the stream bases it shares with the HyperLayer codec are in _codec, zstd frames in _zstd,
encryption in _seal.

A file is MAGIC, a u32 version, then records: HEADER, CHECK*, (DATA|GROUP|DISCARD)*, TRAILER.
Every record is a 24-byte head, a body, and a CRC-32 of head and body as stored. The trailer
holds the record counts and the SHA-1 of every byte before it; nothing may follow it.
Written and read strictly in order, so a diff can go through a pipe or SSH.

Version 2 (written only when compression or encryption is asked for) keeps all of this and
adds two record flags: COMPRESSED (a DATA payload that is one zstd frame) and SEALED (the body
ends with an AEAD tag; CHECK and DATA payloads encrypted), and, in compressed files, GROUP records:
several DATA ranges (a plaintext range table) in one zstd frame, which compresses closer to one
frame of everything (docs/format.md, "GROUP records"). Whatever needs no key (framing, CRCs, order,
counts, the SHA-1, every range) is checked by any reader.
"""

from __future__ import annotations

import json
import struct
import zlib

from ansible_collections.lvdiff.thin.plugins.module_utils._chunkcopy import MAX_EXTENT, lazy_buffer, read_exact
from ansible_collections.lvdiff.thin.plugins.module_utils._codec import (
    CHECK_DIGESTS, FORMAT_VERSION, FORMAT_VERSIONS, MAX_HEADER, TOOL_VERSION, DiffHeader, StreamReader,
    StreamWriter)
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import FormatError, LvdiffError
from ansible_collections.lvdiff.thin.plugins.module_utils._seal import (
    SEAL_SLACK, TAG, BadTag, Seal, record_key_for_reading, seal_for_writing)
from ansible_collections.lvdiff.thin.plugins.module_utils._zstd import (
    ALGORITHM as ZSTD, MAX_LEVEL, MIN_LEVEL, BadFrame, Compressor, Decompressor)

MAGIC = b'\x89LVDIFF\n'
_PREAMBLE = struct.Struct('<8sI')
# type, flags, reserved, body length, offset, length
_HEAD = struct.Struct('<BBHIQQ')
_CRC = struct.Struct('<I')
HEADER, CHECK, DATA, DISCARD, TRAILER, GROUP = (ord(c) for c in 'HCDZTG')
_NAMES = {HEADER: 'HEADER', CHECK: 'CHECK', DATA: 'DATA', DISCARD: 'DISCARD', TRAILER: 'TRAILER', GROUP: 'GROUP'}
# Record flags, version 2 only: a DATA payload that is one zstd frame (always set on GROUP); a body that
# ends with an AEAD tag.
COMPRESSED, SEALED = 0x01, 0x02
MAX_DATA = 16 << 20
# A GROUP's range table: count, then count (offset, length); 2 to MAX_GROUP_RANGES ranges.
_COUNT = struct.Struct('<I')
_RANGE = struct.Struct('<QQ')
MAX_GROUP_RANGES = 4096
# What a writer gathers into one GROUP frame at most: measured in docs/benchmarks.md ("Format 2"),
# 4 MiB against 1 MiB. At most the writer's pool buffer (MAX_EXTENT), which holds the group's data.
GROUP_BYTES = 4 << 20
# The largest record body (a sealed one: TAG more) of each type; TRAILER is a few counts and a SHA-1.
_BODY_LIMIT = {HEADER: MAX_HEADER, CHECK: max(CHECK_DIGESTS.values()), DATA: MAX_DATA, DISCARD: 0,
               TRAILER: 4096, GROUP: MAX_DATA}
_SEALED_TYPES = (CHECK, DATA)  # encrypted; the others stay plaintext, authenticated (GROUP: its frame encrypted)


def _compress_level(level):
    if level is None:
        return None
    if isinstance(level, bool) or not isinstance(level, int) or not MIN_LEVEL <= level <= MAX_LEVEL:
        raise LvdiffError('compression level %r: zstd levels here are %d to %d' % (level, MIN_LEVEL, MAX_LEVEL))
    return level


class LvdiffWriter(StreamWriter):
    """Writes one diff to a file descriptor (file, pipe or socket), in order.

    Call check_from() for every base check, then data_from()/discard() ascending,
    then finish(), which returns (sha1 hex of the whole stream, its size).
    compress_level: None, or zstd's level (1-19) for DATA records; key: None, or the
    _seal.Key to encrypt with. With either, the file is version 2 and the writer fills in
    header.compression and header.encryption; without, it is version 1, as always.
    Compressed, consecutive data_from() pieces are gathered up to group_bytes and written as
    one GROUP record (one frame); counts['data'] counts data ranges, counts['group'] (present
    once there is one) GROUP records.
    """

    check_max_len = data_max_len = MAX_EXTENT
    _bufsize = MAX_EXTENT + SEAL_SLACK  # a sealed DATA body goes into a pool buffer too

    def __init__(self, out_fd, header, compress_level=None, key=None):
        level = _compress_level(compress_level)
        # Everything that can fail for want of a library or a key, before the header is changed and the
        # first byte written.
        self._compressor = Compressor(level) if level is not None else None
        self._seal, encryption = seal_for_writing(key) if key is not None else (None, None)
        header.compression = {'algorithm': ZSTD, 'level': level} if level is not None else None
        header.encryption = encryption
        header.format_version = 2 if level is not None or key is not None else FORMAT_VERSION
        super().__init__(out_fd, header)
        self.counts = {'check': 0, 'data': 0, 'discard': 0}
        self.data_bytes = self.discard_bytes = self.stored_data_bytes = 0
        self.index = 0
        # The pieces gathered for the next GROUP: [(offset, length)], in one pool buffer, group_fill bytes.
        self._group, self._group_buf, self._group_fill = [], None, 0
        self.group_bytes = min(GROUP_BYTES, MAX_EXTENT)  # a group fills one pool buffer at most
        body = header._json()
        if len(body) > MAX_HEADER:
            self.abort()
            raise LvdiffError('the diff header would be %d bytes, more than the %d a reader accepts: '
                              'use fewer or shorter pairs' % (len(body), MAX_HEADER))
        preamble = _PREAMBLE.pack(MAGIC, header.format_version)
        self._emit(preamble)
        self._record(HEADER, 0, 0, body, preamble)

    def _head(self, rtype, flags, payload_len, offset, length):
        if self._seal is not None:
            return _HEAD.pack(rtype, flags | SEALED, 0, payload_len + TAG, offset, length)
        return _HEAD.pack(rtype, flags, 0, payload_len, offset, length)

    def _record(self, rtype, offset, length, payload=b'', aad_prefix=b''):
        head = self._head(rtype, 0, len(payload), offset, length)
        if self._seal is None:
            body = payload
        elif rtype in _SEALED_TYPES:
            body = self._seal.encrypt(self.index, aad_prefix + head, payload)
        else:
            body = payload + self._seal.tag(self.index, aad_prefix + head, payload)
        crc = _CRC.pack(zlib.crc32(body, zlib.crc32(head)))
        self._emit(head, body, crc)
        self.index += 1

    def _seal_pooled(self, aad, payload):
        """payload sealed (record self.index, with aad) into a pool buffer: (the buffer, the sealed bytes in it).
        The buffer goes back to the pool if sealing fails."""
        out = self.hasher.buffer()
        try:
            return out, memoryview(out)[:self._seal.encrypt_into(self.index, aad, payload, out)]
        except BaseException:
            self.hasher.release(out)
            raise

    def check_from(self, base_fd, offset, length):
        self._flush()
        self._record(CHECK, offset, length, self._digest_pooled(base_fd, offset, length, self.header.check_digest))
        self.counts['check'] += 1

    def data_from(self, src_fd, offset, length):
        if self._compressor is None:
            buf, view = self._read_pooled(src_fd, offset, length)
            self._data_record(buf, view, offset, length)
            return
        # Compressed: consecutive pieces gather in one pool buffer, up to group_bytes, and go out as one
        # GROUP (or one DATA record) when the next would not fit or another kind of record comes.
        if self._group and (self._group_fill + length > self.group_bytes or len(self._group) >= MAX_GROUP_RANGES):
            self._flush()
        if self._group_buf is None:
            self._group_buf = self.hasher.buffer()
        read_exact(src_fd, memoryview(self._group_buf)[self._group_fill:self._group_fill + length], offset)
        self._group.append((offset, length))
        self._group_fill += length

    def _data_record(self, buf, view, offset, length):
        """One DATA record of view, compressed if that makes it smaller; buf, the pool buffer behind view,
        goes back to the pool."""
        payload, flags = view, 0
        try:
            if self._compressor is not None:
                frame = self._compressor.compress(view)
                if len(frame) < length:  # else stored raw: incompressible data costs a reader nothing
                    payload, flags = frame, COMPRESSED
            head = self._head(DATA, flags, len(payload), offset, length)
            if self._seal is not None:
                out, sealed = self._seal_pooled(head, payload)
                self.hasher.release(buf)
                buf, view = out, sealed
            elif payload is not view:
                self.hasher.release(buf)
                buf, view = None, memoryview(payload)
        except BaseException:
            if buf is not None:
                self.hasher.release(buf)
            raise
        crc = _CRC.pack(zlib.crc32(view, zlib.crc32(head)))
        if buf is None:
            self._emit(head, payload, crc)
        else:
            self._emit_pooled(buf, view, head, crc)
        self.index += 1
        self.counts['data'] += 1
        self.data_bytes += length
        self.stored_data_bytes += len(payload)

    def _flush(self):
        """Write the gathered pieces: one alone as a DATA record; several as one GROUP record if it is
        smaller than their DATA records stored raw, else as those raw DATA records."""
        ranges, buf, fill = self._group, self._group_buf, self._group_fill
        if not ranges:
            return
        self._group, self._group_buf, self._group_fill = [], None, 0
        view = memoryview(buf)[:fill]
        if len(ranges) == 1:
            self._data_record(buf, view, *ranges[0])
            return
        try:
            frame = self._compressor.compress(view)
        except BaseException:
            self.hasher.release(buf)
            raise
        table = _COUNT.pack(len(ranges)) + b''.join(_RANGE.pack(o, n) for o, n in ranges)
        per_record = _HEAD.size + _CRC.size + (TAG if self._seal is not None else 0)
        # A frame shorter than the data (a reader's rule), and a record smaller than the raw records (estimate_size's
        # bound): with many small pieces the heads saved could otherwise pay for a frame longer than the data.
        if len(frame) < fill and per_record + len(table) + len(frame) < len(ranges) * per_record + fill:
            self.hasher.release(buf)
            self._group_record(ranges, fill, table, frame)
            return
        pos = 0
        for offset, length in ranges:  # incompressible: raw DATA records, read from the shared buffer
            self._raw_record(view[pos:pos + length], offset, length)
            pos += length
        self.hasher.submit(b'', buf)  # back to the pool once the views above are hashed

    def _raw_record(self, view, offset, length):
        head = self._head(DATA, 0, length, offset, length)
        if self._seal is None:
            self._emit_views(head, view, _CRC.pack(zlib.crc32(view, zlib.crc32(head))))
        else:
            out, sealed = self._seal_pooled(head, view)
            self._emit_pooled(out, sealed, head, _CRC.pack(zlib.crc32(sealed, zlib.crc32(head))))
        self.index += 1
        self.counts['data'] += 1
        self.data_bytes += length
        self.stored_data_bytes += length

    def _group_record(self, ranges, fill, table, frame):
        head = self._head(GROUP, COMPRESSED, len(table) + len(frame), ranges[0][0], fill)
        if self._seal is None:
            self._emit(head + table, frame, _CRC.pack(zlib.crc32(frame, zlib.crc32(table, zlib.crc32(head)))))
        else:
            # The table stays plaintext (a keyless host checks every range) and is authenticated with the head.
            out, sealed = self._seal_pooled(head + table, frame)
            crc = _CRC.pack(zlib.crc32(sealed, zlib.crc32(table, zlib.crc32(head))))
            self._emit_pooled(out, sealed, head + table, crc)
        self.index += 1
        self.counts['data'] += len(ranges)
        self.counts['group'] = self.counts.get('group', 0) + 1
        self.data_bytes += fill
        self.stored_data_bytes += len(frame)

    def discard(self, offset, length):
        self._flush()
        self._record(DISCARD, offset, length)
        self.counts['discard'] += 1
        self.discard_bytes += length

    def finish(self):
        self._flush()
        before = self.hasher.result().hexdigest()
        trailer = {'records': self.counts, 'data_bytes': self.data_bytes,
                   'discard_bytes': self.discard_bytes, 'sha1': before}
        if self.header.format_version == 2:
            trailer['stored_data_bytes'] = self.stored_data_bytes
        self._record(TRAILER, 0, 0, json.dumps(trailer, sort_keys=True, separators=(',', ':')).encode())
        return super().finish()


# --- reading -------------------------------------------------------------------------


class LvdiffReader(StreamReader):
    """Reads and verifies a diff (version 1 or 2) from a binary file object, strictly in order.

    ``header`` is read at construction, with no key and no library: repository scans read the
    headers of encrypted files on hosts that hold no key. With a key, the key id is checked
    there too (WrongKeyError). ``events()`` yields ('check', offset, length, digest),
    ('data', offset, length, payload) and ('discard', offset, length, None), each record
    verified (CRC, and with decode its tag, decrypted, decompressed) before it is yielded; a
    payload view is valid until the next event. After the last event the trailer has been
    verified and ``sha1`` (of the whole file), ``size``, ``counts`` and ``stored_data_bytes``
    are set.
    """

    _bufsize = MAX_DATA + SEAL_SLACK

    def __init__(self, f, key=None):
        super().__init__(f, key)
        self.index = 0  # records read so far
        self.record = 0  # the record being read, for messages
        self.stored_data_bytes = 0
        self._seal = self._record_key = self._decompressor = self._plain = None
        pre = self._read(_PREAMBLE.size, 'the file preamble')
        magic, version = _PREAMBLE.unpack(pre)
        if magic != MAGIC:
            raise FormatError('not an lvdiff file: bad magic %r' % magic)
        if version not in FORMAT_VERSIONS:
            raise FormatError('diff format version %d is not supported by %s (it reads versions %s); upgrade the '
                              'collection' % (version, TOOL_VERSION, ' and '.join(map(str, FORMAT_VERSIONS))))
        self.version = version
        self._preamble = pre
        self.hasher.submit(pre)
        start = self.pos
        rtype, flags, offset, length, body, head = self._next_record()
        if rtype != HEADER:
            raise FormatError('record 0 is %s, expected HEADER' % _NAMES.get(rtype, rtype))
        self._header_record = (start, head, bytes(body))
        self.header = DiffHeader._from_json(body[:-TAG] if flags & SEALED else body, version)
        self.encrypted = self.header.encryption is not None
        self.compressed = self.header.compression is not None
        self._check_sealed(start, HEADER, flags)
        if key is not None and self.encrypted:
            # Only the key id: stdlib, before any tag. The AEAD (cryptography) when records are decoded.
            self._record_key = record_key_for_reading(key, self.header.encryption, self.name)

    def _read(self, n, what):
        data = self.f.read(n)
        if len(data) != n:
            raise FormatError('truncated diff: file ends at byte %d inside %s' % (self.pos + len(data), what))
        self.pos += n
        return data

    def _fail(self, start, msg):
        return FormatError('corrupt diff: record %d at file offset %d: %s' % (self.record, start, msg))

    def _check_sealed(self, start, rtype, flags):
        if bool(flags & SEALED) != self.encrypted:
            raise self._fail(start, '%s record %s sealed in a file whose header %s' % (
                _NAMES[rtype], 'is' if flags & SEALED else 'is not',
                'names no encryption' if flags & SEALED else 'says it is encrypted'))

    def _next_record(self):
        """Read one record, verify its CRC: (type, flags, offset, length, body, head); the body is a view,
        valid until the next call."""
        start = self.pos
        self.record = self.index
        head = self._read(_HEAD.size, 'record %d' % self.index)
        rtype, flags, reserved, body_len, offset, length = _HEAD.unpack(head)
        # A flipped bit in a head may show here before the CRC is read.
        if rtype not in _NAMES or reserved:
            raise self._fail(start, 'unknown record type %d or non-zero reserved field' % rtype)
        if rtype == GROUP and self.version == 1:
            raise self._fail(start, 'GROUP record in a version 1 file (only version 2 files have them)')
        if flags and self.version == 1:
            raise self._fail(start, '%s record with flags 0x%02x in a version 1 file (which has none)'
                             % (_NAMES[rtype], flags))
        if flags & ~(COMPRESSED | SEALED) or (flags & COMPRESSED and rtype not in (DATA, GROUP)):
            raise self._fail(start, '%s record with unknown flags 0x%02x' % (_NAMES[rtype], flags))
        limit = _BODY_LIMIT[rtype] + (TAG if flags & SEALED else 0)
        if body_len > limit:
            raise self._fail(start, '%s body length %d is larger than any valid one (%d)'
                             % (_NAMES[rtype], body_len, limit))
        if flags & SEALED and body_len < TAG:
            raise self._fail(start, 'sealed %s record of %d bytes, shorter than its %d-byte tag'
                             % (_NAMES[rtype], body_len, TAG))
        if rtype == TRAILER:  # the trailer holds the digest of everything before it
            self._digest_before_trailer = self.hasher.result().hexdigest()
        buf = self.hasher.buffer() if body_len else None
        body = memoryview(buf)[:body_len] if buf is not None else memoryview(b'')
        try:
            if body_len and self._fill(body) < body_len:
                raise FormatError('truncated diff: file ends at byte %d inside record %d (%s)'
                                  % (self.pos, self.index, _NAMES[rtype]))
            crc_bytes = self._read(_CRC.size, 'record %d' % self.index)
            if _CRC.unpack(crc_bytes)[0] != zlib.crc32(body, zlib.crc32(head)):
                raise self._fail(start, '%s record checksum mismatch (volume offset %d, length %d)'
                                 % (_NAMES[rtype], offset, length))
        except BaseException:
            if buf is not None:
                self.hasher.release(buf)
            raise
        self.hasher.submit(head)
        if buf is not None:
            self.hasher.submit(body, buf)
        self.hasher.submit(crc_bytes)
        self.index += 1
        return rtype, flags, offset, length, body, head

    # --- decoding (with the key; zstd) ---

    def _tag_failed(self, start, rtype, offset, length):
        return FormatError('corrupt or forged diff: record %d at file offset %d: %s record (volume offset %d, '
                           'length %d) fails its authentication tag: it was changed, moved, or taken from another '
                           'file' % (self.record, start, _NAMES[rtype], offset, length))

    def _authenticated(self, start, rtype, offset, length, head, body):
        """The plaintext payload of a sealed record once its tag is checked: decrypted (CHECK, DATA) or
        as stored without its tag."""
        aad = self._preamble + head if rtype == HEADER else head
        try:
            if rtype not in _SEALED_TYPES:
                self._seal.check_tag(self.record, aad, body[:-TAG], body[-TAG:])
                return body[:-TAG]
            if rtype == CHECK:
                return self._seal.decrypt(self.record, aad, body)
            if self._plain is None:
                self._plain = lazy_buffer(MAX_DATA + SEAL_SLACK)
            return self._seal.decrypt_into(self.record, aad, body, self._plain)
        except BadTag:
            raise self._tag_failed(start, rtype, offset, length)

    def _decompress(self, start, offset, length, frame, what='compressed DATA'):
        if self._decompressor is None:
            self._decompressor = Decompressor()  # MissingLibraryError, only once a frame is to be read
        try:
            return self._decompressor.decompress(frame, length)
        except BadFrame as e:
            raise self._fail(start, '%s record (volume offset %d, length %d): %s' % (what, offset, length, e))

    def _group_frame(self, head, table, sealed):
        """The frame of a sealed GROUP record, decrypted once its tag (over head and table) is checked."""
        if self._plain is None:
            self._plain = lazy_buffer(MAX_DATA + SEAL_SLACK)
        return self._seal.decrypt_into(self.record, bytes(head) + bytes(table), sealed, self._plain)

    def _group_table(self, start, flags, offset, length, body, vol_size):
        """A GROUP record's ranges [(offset, length)] and the size of its table, every rule checked (no key, no
        library): compressed file, flag, count, order, bounds, first offset, sum, a frame shorter than the data."""
        if not self.compressed:
            raise self._fail(start, 'GROUP record in a file whose header names no compression')
        if not flags & COMPRESSED:
            raise self._fail(start, 'GROUP record without the COMPRESSED flag')
        if length > MAX_DATA:
            raise self._fail(start, 'GROUP record of length %d: a GROUP holds at most %d bytes' % (length, MAX_DATA))
        if len(body) < _COUNT.size:
            raise self._fail(start, 'GROUP body of %d bytes, too short for its range count' % len(body))
        count = _COUNT.unpack_from(body)[0]
        if not 2 <= count <= MAX_GROUP_RANGES:
            raise self._fail(start, 'GROUP record of %d ranges: a GROUP holds 2 to %d' % (count, MAX_GROUP_RANGES))
        table_len = _COUNT.size + count * _RANGE.size
        if table_len > len(body):
            raise self._fail(start, 'GROUP range table of %d ranges (%d bytes) is longer than the %d-byte body'
                             % (count, table_len, len(body)))
        ranges = list(_RANGE.iter_unpack(body[_COUNT.size:table_len]))
        if ranges[0][0] != offset:
            raise self._fail(start, 'GROUP first range at %d, not at the record\'s offset %d' % (ranges[0][0], offset))
        end = total = 0
        for i, (r_offset, r_length) in enumerate(ranges):
            if r_length == 0 or r_offset < end or r_offset + r_length > vol_size:
                raise self._fail(start, 'GROUP range %d (%d+%d) is empty, overlaps, goes backwards or leaves the '
                                 '%d-byte volume' % (i, r_offset, r_length, vol_size))
            end = r_offset + r_length
            total += r_length
        if total != length:
            raise self._fail(start, 'GROUP ranges hold %d bytes, not the record\'s length %d' % (total, length))
        frame_len = len(body) - table_len
        if not 0 < frame_len < length:
            raise self._fail(start, 'GROUP record of length %d with a %d-byte frame: a frame is shorter than the '
                             'data it holds, and not empty' % (length, frame_len))
        return ranges, table_len

    def _start_decoding(self):
        """The AEAD, and the HEADER record's tag checked (record 0): before any other record is read."""
        self._seal = Seal(self.header.encryption['algorithm'], self._record_key)
        start, head, body = self._header_record
        self.record = 0
        self._authenticated(start, HEADER, 0, 0, head, memoryview(body))

    def _events(self, decode):
        """Each record's structure is checked first (what any reader can check), then, when decoding, its tag
        and its payload: a damage that a keyless host sees gets the same message with the key."""
        hdr = self.header
        if decode and self.encrypted:
            self._start_decoding()
        vol_size = hdr.volume['size']
        base_size = (hdr.base or {}).get('size') or vol_size
        digest_len = CHECK_DIGESTS[hdr.check_digest]
        end = 0
        in_data = False
        while True:
            start = self.pos
            rtype, flags, offset, length, body, head = self._next_record()
            self._check_sealed(start, rtype, flags)
            stored = len(body) - TAG if flags & SEALED else len(body)  # the payload's size as stored
            if rtype == HEADER:
                raise self._fail(start, 'a second HEADER record')
            if rtype == TRAILER:
                self._check_trailer(start, body[:stored], self._digest_before_trailer)
                if self._seal is not None:
                    self._authenticated(start, rtype, offset, length, head, body)
                self._end()
                return
            if rtype == CHECK:
                if in_data:
                    raise self._fail(start, 'CHECK record after DATA/DISCARD records')
                if not hdr.incremental:
                    raise self._fail(start, 'CHECK record in a full image')
                if stored != digest_len or length == 0 or offset + length > base_size:
                    raise self._fail(start, 'CHECK record out of range or with a bad digest size')
                self.counts['check'] += 1
                yield 'check', offset, length, bytes(self._payload(start, rtype, offset, length, head, body)) if (
                    decode) else None
                continue
            in_data = True
            if offset < end or length == 0 or offset + length > vol_size:
                raise self._fail(start, '%s range %d+%d overlaps, goes backwards or leaves the '
                                 '%d-byte volume' % (_NAMES[rtype], offset, length, vol_size))
            end = offset + length
            if rtype == GROUP:
                ranges, table_len = self._group_table(start, flags, offset, length, body[:stored], vol_size)
                end = ranges[-1][0] + ranges[-1][1]
                frame_len = stored - table_len
                data = None
                if decode:
                    frame = body[table_len:stored]
                    if self._seal is not None:
                        try:  # the table authenticated with the head, the frame decrypted: one tag
                            frame = self._group_frame(head, body[:table_len], body[table_len:])
                        except BadTag:
                            raise self._tag_failed(start, rtype, offset, length)
                    data = memoryview(self._decompress(start, offset, length, frame, 'GROUP'))
                self.counts['data'] += len(ranges)
                self.counts['group'] = self.counts.get('group', 0) + 1
                self.data_bytes += length
                self.stored_data_bytes += frame_len
                pos = 0
                for r_offset, r_length in ranges:
                    yield 'data', r_offset, r_length, data[pos:pos + r_length] if data is not None else None
                    pos += r_length
                continue
            if rtype == DATA:
                if flags & COMPRESSED:
                    if not self.compressed:
                        raise self._fail(start, 'compressed DATA record in a file whose header names no compression')
                    if length > MAX_DATA or stored >= length:
                        raise self._fail(start, 'compressed DATA record of length %d with a %d-byte payload: a '
                                         'payload is shorter than its length, and a length at most %d'
                                         % (length, stored, MAX_DATA))
                elif stored != length:
                    raise self._fail(start, 'DATA record length %d but payload %d' % (length, stored))
                payload = None
                if decode:
                    payload = self._payload(start, rtype, offset, length, head, body)
                    if flags & COMPRESSED:
                        payload = self._decompress(start, offset, length, payload)
                self.counts['data'] += 1
                self.data_bytes += length
                self.stored_data_bytes += stored
                yield 'data', offset, length, payload
            else:
                if stored:
                    raise self._fail(start, 'DISCARD record with a body')
                if self._seal is not None:
                    self._authenticated(start, rtype, offset, length, head, body)
                self.counts['discard'] += 1
                self.discard_bytes += length
                yield 'discard', offset, length, None

    def _payload(self, start, rtype, offset, length, head, body):
        """A CHECK or DATA record's payload as written: decrypted once its tag is checked, or as stored."""
        return self._authenticated(start, rtype, offset, length, head, body) if self._seal is not None else body

    def _check_trailer(self, start, body, digest_before):
        keys = ('records', 'data_bytes', 'discard_bytes', 'sha1')
        if self.version == 2:
            keys += ('stored_data_bytes',)
        try:
            t = json.loads(bytes(body).decode('utf-8'))
            expected = tuple(t[k] for k in keys)
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            raise self._fail(start, 'unreadable TRAILER: %s' % e)
        actual = (self.counts, self.data_bytes, self.discard_bytes, digest_before, self.stored_data_bytes)[:len(keys)]
        if expected != actual:
            raise self._fail(start, 'TRAILER does not match the records read (records lost, added or '
                             'reordered): expected %r, read %r' % (expected, actual))

    def _end(self):
        if self.f.read(1):
            raise FormatError('corrupt diff: data after the TRAILER at file offset %d' % self.pos)
        self.size = self.pos
        self.sha1 = self.hasher.result().hexdigest()

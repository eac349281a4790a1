# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The lvdiff diff format, version 1 (specified in docs/format.md); the header model and
the stream bases it shares with the HyperLayer codec are in _codec.

A file is MAGIC, a u32 version, then records: HEADER, CHECK*, (DATA|DISCARD)*, TRAILER.
Every record is a 24-byte head, a body, and a CRC-32 of head and body. The trailer
holds the record counts and the SHA-1 of every byte before it; nothing may follow it.
Written and read strictly in order, so a diff can go through a pipe or SSH.
"""

from __future__ import annotations

import json
import struct
import zlib

from ansible_collections.lvdiff.thin.plugins.module_utils._chunkcopy import MAX_EXTENT
from ansible_collections.lvdiff.thin.plugins.module_utils._codec import (
    CHECK_DIGESTS, FORMAT_VERSION, MAX_HEADER, TOOL_VERSION, DiffHeader, StreamReader, StreamWriter)
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import FormatError, LvdiffError

MAGIC = b'\x89LVDIFF\n'
_PREAMBLE = struct.Struct('<8sI')
# type, flags, reserved, body length, offset, length
_HEAD = struct.Struct('<BBHIQQ')
_CRC = struct.Struct('<I')
HEADER, CHECK, DATA, DISCARD, TRAILER = (ord(c) for c in 'HCDZT')
_NAMES = {HEADER: 'HEADER', CHECK: 'CHECK', DATA: 'DATA', DISCARD: 'DISCARD', TRAILER: 'TRAILER'}
MAX_DATA = 16 << 20
# The largest record body of each type; TRAILER is a few counts and a SHA-1.
_BODY_LIMIT = {HEADER: MAX_HEADER, CHECK: max(CHECK_DIGESTS.values()), DATA: MAX_DATA, DISCARD: 0,
               TRAILER: 4096}


class LvdiffWriter(StreamWriter):
    """Writes one diff to a file descriptor (file, pipe or socket), in order.

    Call check_from() for every base check, then data_from()/discard() ascending,
    then finish(), which returns (sha1 hex of the whole stream, its size).
    """

    check_max_len = data_max_len = MAX_EXTENT

    def __init__(self, out_fd, header):
        super().__init__(out_fd, header)
        self.counts = {'check': 0, 'data': 0, 'discard': 0}
        self.data_bytes = self.discard_bytes = 0
        body = header._json()
        if len(body) > MAX_HEADER:
            self.abort()
            raise LvdiffError('the diff header would be %d bytes, more than the %d a reader accepts: '
                              'use fewer or shorter pairs' % (len(body), MAX_HEADER))
        self._emit(_PREAMBLE.pack(MAGIC, FORMAT_VERSION))
        self._record(HEADER, 0, 0, body)

    def _record(self, rtype, offset, length, body=b''):
        head = _HEAD.pack(rtype, 0, 0, len(body), offset, length)
        crc = _CRC.pack(zlib.crc32(body, zlib.crc32(head)))
        self._emit(head, body, crc)

    def check_from(self, base_fd, offset, length):
        self._record(CHECK, offset, length, self._digest_pooled(base_fd, offset, length, self.header.check_digest))
        self.counts['check'] += 1

    def data_from(self, src_fd, offset, length):
        buf, view = self._read_pooled(src_fd, offset, length)
        head = _HEAD.pack(DATA, 0, 0, length, offset, length)
        crc = _CRC.pack(zlib.crc32(view, zlib.crc32(head)))
        self._emit_pooled(buf, view, head, crc)
        self.counts['data'] += 1
        self.data_bytes += length

    def discard(self, offset, length):
        self._record(DISCARD, offset, length)
        self.counts['discard'] += 1
        self.discard_bytes += length

    def finish(self):
        before = self.hasher.result().hexdigest()
        trailer = {'records': self.counts, 'data_bytes': self.data_bytes,
                   'discard_bytes': self.discard_bytes, 'sha1': before}
        self._record(TRAILER, 0, 0, json.dumps(trailer, sort_keys=True, separators=(',', ':')).encode())
        return super().finish()


# --- reading -------------------------------------------------------------------------


class LvdiffReader(StreamReader):
    """Reads and verifies a diff from a binary file object, strictly in order.

    ``header`` is read at construction. ``events()`` yields ('check', offset, length,
    digest), ('data', offset, length, payload) and ('discard', offset, length, None),
    each record verified before it is yielded; a payload view is valid until the
    next event. After the last event the trailer has been verified and ``sha1``
    (of the whole file), ``size`` and ``counts`` are set.
    """

    _bufsize = MAX_DATA

    def __init__(self, f):
        super().__init__(f)
        self.index = 0
        pre = self._read(_PREAMBLE.size, 'the file preamble')
        magic, version = _PREAMBLE.unpack(pre)
        if magic != MAGIC:
            raise FormatError('not an lvdiff file: bad magic %r' % magic)
        if version != FORMAT_VERSION:
            raise FormatError('diff format version %d is not supported by %s (it reads version %d); '
                              'upgrade the collection' % (version, TOOL_VERSION, FORMAT_VERSION))
        self.hasher.submit(pre)
        rtype, offset, length, body = self._next_record()
        if rtype != HEADER:
            raise FormatError('record 0 is %s, expected HEADER' % _NAMES.get(rtype, rtype))
        self.header = DiffHeader._from_json(body)

    def _read(self, n, what):
        data = self.f.read(n)
        if len(data) != n:
            raise FormatError('truncated diff: file ends at byte %d inside %s' % (self.pos + len(data), what))
        self.pos += n
        return data

    def _fail(self, start, msg):
        return FormatError('corrupt diff: record %d at file offset %d: %s' % (self.index, start, msg))

    def _next_record(self):
        """Read one record, verify its CRC; the body is a view, valid until the next call."""
        start = self.pos
        head = self._read(_HEAD.size, 'record %d' % self.index)
        rtype, flags, reserved, body_len, offset, length = _HEAD.unpack(head)
        if rtype not in _NAMES or flags or reserved:
            # A flipped bit in a head may show here before the CRC is read.
            raise self._fail(start, 'unknown record type %d or non-zero flags' % rtype)
        if body_len > _BODY_LIMIT[rtype]:
            raise self._fail(start, '%s body length %d is larger than any valid one (%d)'
                             % (_NAMES[rtype], body_len, _BODY_LIMIT[rtype]))
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
        return rtype, offset, length, body

    def _events(self):
        hdr = self.header
        vol_size = hdr.volume['size']
        base_size = (hdr.base or {}).get('size') or vol_size
        digest_len = CHECK_DIGESTS[hdr.check_digest]
        end = 0
        in_data = False
        while True:
            start = self.pos
            rtype, offset, length, body = self._next_record()
            if rtype == TRAILER:
                self._check_trailer(start, body, self._digest_before_trailer)
                return
            if rtype == HEADER:
                raise self._fail(start, 'a second HEADER record')
            if rtype == CHECK:
                if in_data:
                    raise self._fail(start, 'CHECK record after DATA/DISCARD records')
                if not hdr.incremental:
                    raise self._fail(start, 'CHECK record in a full image')
                if len(body) != digest_len or length == 0 or offset + length > base_size:
                    raise self._fail(start, 'CHECK record out of range or with a bad digest size')
                self.counts['check'] += 1
                yield 'check', offset, length, bytes(body)
                continue
            in_data = True
            if offset < end or length == 0 or offset + length > vol_size:
                raise self._fail(start, '%s range %d+%d overlaps, goes backwards or leaves the '
                                 '%d-byte volume' % (_NAMES[rtype], offset, length, vol_size))
            end = offset + length
            if rtype == DATA:
                if len(body) != length:
                    raise self._fail(start, 'DATA record length %d but body %d' % (length, len(body)))
                self.counts['data'] += 1
                self.data_bytes += length
                yield 'data', offset, length, body
            else:
                if len(body):
                    raise self._fail(start, 'DISCARD record with a body')
                self.counts['discard'] += 1
                self.discard_bytes += length
                yield 'discard', offset, length, None

    def _check_trailer(self, start, body, digest_before):
        try:
            t = json.loads(bytes(body).decode('utf-8'))
            expected = (t['records'], t['data_bytes'], t['discard_bytes'], t['sha1'])
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            raise self._fail(start, 'unreadable TRAILER: %s' % e)
        actual = (self.counts, self.data_bytes, self.discard_bytes, digest_before)
        if expected != actual:
            raise self._fail(start, 'TRAILER does not match the records read (records lost, added or '
                             'reordered): expected %r, read %r' % (expected, actual))
        if self.f.read(1):
            raise FormatError('corrupt diff: data after the TRAILER at file offset %d' % self.pos)
        self.size = self.pos
        self.sha1 = self.hasher.result().hexdigest()

# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The original Go lvdiff's HYPERLAYER/1.0 format, read and written for compatibility.

It has no record checksums and no trailer: we detect what can be detected (a short
payload, a missing newline, fewer W records than the header's "Delta blocks") and say
in docs/format.md what cannot (a flipped payload byte). The header is YAML-like; we
never run a YAML parser on it: "key: value" lines, split at the first ": ", values
taken verbatim unless they are one complete YAML quoted scalar. Base-only chunks are
sent as chunks of zeros, because the format has no discard record.
"""

from __future__ import annotations

import json
import re

from ansible_collections.lvdiff.thin.plugins.module_utils._chunkcopy import MAX_EXTENT, ZEROS
from ansible_collections.lvdiff.thin.plugins.module_utils._codec import (
    MAX_HEADER, MAX_PAIRS, DiffHeader, StreamReader, StreamWriter)
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import FormatError, LvdiffError

MAGIC = b'HYPERLAYER/1.0\n'
_STANDARD_KEYS = ('Name', 'Volume size', 'Chunk size', 'Delta blocks', 'VolumeUUID', 'Detect level',
                  'Backing volumeUUID')
_PAIR_KEY = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_ .-]*$')
_SECTOR = 512
_MAX_LINE = 65536
# Strict fields: int() would also take '-8', '0x8', '1_0', ' 8'. Sector numbers fit in 16 hex digits.
_DECIMAL = re.compile(r'[0-9]{1,19}\Z')
_D_LINE = re.compile(rb'D ([0-9A-Fa-f]{1,16}) ([0-9A-Fa-f]{1,16}) CRC32 ([0-9A-Fa-f]{1,8})\n\Z')
_W_LINE = re.compile(rb'W ([0-9A-Fa-f]{1,16}) ([0-9A-Fa-f]{1,16})\n\Z')


def _yaml_value(text):
    """The string a YAML reader would see for a one-line value we wrote or the Go tool wrote."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            return json.loads(text)
        except ValueError:
            return text
    if len(text) >= 2 and text[0] == "'" and text[-1] == "'" and "'" not in text[1:-1].replace("''", ''):
        return text[1:-1].replace("''", "'")
    return text


def _check_pairs(pairs):
    for key, value in pairs.items():
        if not _PAIR_KEY.match(key) or key.endswith(' ') or key in _STANDARD_KEYS:
            raise LvdiffError('pair key %r cannot be written in a HyperLayer header: keys there are '
                              'identifiers (letters, digits, _ . - and inner spaces) other than the '
                              'standard keys; use format lvdiff for any key' % key)


class HyperlayerWriter(StreamWriter):
    """Same interface as LvdiffWriter. ``delta_blocks``: the number of W records
    (data chunks plus discarded chunks), which the header announces up front."""

    def __init__(self, out_fd, header, delta_blocks):
        if not header.incremental:
            raise LvdiffError('a HyperLayer file cannot hold a full image: the Go lvpatch always '
                              'patches onto a base volume; use format lvdiff')
        _check_pairs(header.pairs)
        lines = ['HYPERLAYER/1.0',
                 'Name: %s' % header.volume['name'],
                 'Volume size: %d' % header.volume['size'],
                 'Chunk size: %d' % header.chunk_size,
                 'Delta blocks: %d' % delta_blocks,
                 'VolumeUUID: %s' % header.volume['uuid'],
                 'Detect level: %d' % header.checksum_level,
                 'Backing volumeUUID: %s' % header.base['uuid']]
        lines += ['%s: %s' % (k, json.dumps(v, ensure_ascii=False)) for k, v in sorted(header.pairs.items())]
        text = ('\n'.join(lines) + '\n\n').encode('utf-8')
        if len(text) > MAX_HEADER:
            raise LvdiffError('the HyperLayer header would be %d bytes, more than the %d a reader accepts: '
                              'use fewer or shorter pairs' % (len(text), MAX_HEADER))
        super().__init__(out_fd, header)
        self.chunk = header.chunk_size
        self.check_max_len = self.chunk
        self.data_max_len = self.chunk
        self.checks = 0
        self.writes = 0
        self._emit(text)

    def check_from(self, base_fd, offset, length):
        crc = int.from_bytes(self._digest_pooled(base_fd, offset, length, 'crc32'), 'big')
        self._emit(b'D %X %X CRC32 %x\n' % (offset // _SECTOR, length // _SECTOR, crc))
        self.checks += 1

    def _end_checks(self):
        if self.checks and not self.writes:
            self._emit(b'\n')

    def data_from(self, src_fd, offset, length):
        """One W record of at most one chunk, streamed in pieces."""
        self._end_checks()
        self._emit(b'W %X %X\n' % (offset // _SECTOR, length // _SECTOR))
        done = 0
        while done < length:
            n = min(MAX_EXTENT, length - done)
            buf, view = self._read_pooled(src_fd, offset + done, n)
            self._emit_pooled(buf, view)
            done += n
        self._emit(b'\n')
        self.writes += 1

    def discard(self, offset, length):
        end = offset + length
        while offset < end:
            n = min(self.chunk, end - offset)
            self._end_checks()
            self._emit(b'W %X %X\n' % (offset // _SECTOR, n // _SECTOR))
            left = n
            while left:
                m = min(left, len(ZEROS))
                self._emit(ZEROS[:m])
                left -= m
            self._emit(b'\n')
            self.writes += 1
            offset += n


class HyperlayerReader(StreamReader):
    """Same interface as LvdiffReader, for HYPERLAYER/1.0 files."""

    def __init__(self, f, key=None):
        super().__init__(f, key)
        self.line_no = 0
        if self._line() != MAGIC:
            raise FormatError('not a HyperLayer file: the first line is not HYPERLAYER/1.0')
        fields = {}
        pairs = {}
        while True:
            line = self._line()
            if line == b'\n':
                break
            if not line.endswith(b'\n'):
                raise FormatError('truncated HyperLayer file: the header has no ending blank line, or line %d '
                                  'is longer than %d bytes' % (self.line_no, _MAX_LINE))
            try:
                text = line.decode('utf-8')[:-1]
            except UnicodeDecodeError:
                raise FormatError('HyperLayer header line %d is not UTF-8' % self.line_no)
            key, sep, value = text.partition(':')
            if not sep:
                raise FormatError('HyperLayer header line %d has no "key: value": %r' % (self.line_no, text[:80]))
            value = value[1:] if value.startswith(' ') else value
            if key in fields or key in pairs:  # two readers must not see two different files
                raise FormatError('HyperLayer header line %d: key %r a second time' % (self.line_no, key[:80]))
            if key in _STANDARD_KEYS:
                fields[key] = value.strip()
            else:
                pairs[key] = _yaml_value(value.strip())
            # Caps: a header is small metadata; a hostile one must not cost memory and time.
            if self.pos > MAX_HEADER or len(pairs) > MAX_PAIRS:
                raise FormatError('HyperLayer header is larger than %d bytes or %d pairs' % (MAX_HEADER, MAX_PAIRS))
        for key in _STANDARD_KEYS:
            if key not in fields:
                raise FormatError('HyperLayer header has no %r line' % key)
        ints = {}
        for key in ('Volume size', 'Chunk size', 'Delta blocks', 'Detect level'):
            if not _DECIMAL.match(fields[key]):  # int() would take ' 8', '+8', '1_0', other scripts' digits
                raise FormatError('HyperLayer header: %s is not a number: %r' % (key, fields[key][:80]))
            ints[key] = int(fields[key])
        self.delta_blocks = ints['Delta blocks']
        self.header = DiffHeader(
            format='hyperlayer', format_version=1, tool='hyperlayer', check_digest='crc32',
            volume={'name': _yaml_value(fields['Name']), 'uuid': fields['VolumeUUID'],
                    'thin_id': None, 'size': ints['Volume size']},
            base={'name': None, 'uuid': fields['Backing volumeUUID'], 'thin_id': None, 'size': None},
            chunk_size=ints['Chunk size'], checksum_level=ints['Detect level'], pairs=pairs).validate()
        # Each W record holds at least one sector and they do not overlap.
        if self.delta_blocks > ints['Volume size'] // _SECTOR:
            raise FormatError('HyperLayer header: %d delta blocks cannot fit in a %d-byte volume'
                              % (self.delta_blocks, ints['Volume size']))

    def _line(self):
        line = self.f.readline(_MAX_LINE)
        self.hasher.submit(line)
        self.pos += len(line)
        self.line_no += 1
        return line

    def _range(self, match, what, end=0):
        """The byte range of a D or W line's hex sector fields, within the volume and at or after end."""
        offset, length = int(match.group(1), 16) * _SECTOR, int(match.group(2), 16) * _SECTOR
        size = self.header.volume['size']
        if length <= 0 or offset < end or offset + length > size:
            raise FormatError('corrupt HyperLayer file: %s line %d: range %d+%d is empty, overlaps or goes '
                              'backwards, or leaves the %d-byte volume' % (what, self.line_no, offset, length, size))
        return offset, length

    def _events(self, decode):
        line = self._line()  # decode: nothing here is encoded; payloads come either way
        while line.startswith(b'D '):
            m = _D_LINE.match(line)
            if not m:
                raise FormatError('corrupt HyperLayer file: bad D line %d: %r' % (self.line_no, line[:80]))
            offset, length = self._range(m, 'D')
            self.counts['check'] += 1
            yield 'check', offset, length, int(m.group(3), 16).to_bytes(4, 'big')
            line = self._line()
            if line == b'\n':
                line = self._line()
        end = 0
        while line:
            m = _W_LINE.match(line)
            if not m:
                raise FormatError('corrupt HyperLayer file: expected a W record at line %d, file offset %d'
                                  % (self.line_no, self.pos - len(line)))
            offset, length = self._range(m, 'W', end)
            end = offset + length
            yield from self._payload(offset, length)
            if self.f.read(1) != b'\n':
                raise FormatError('corrupt or truncated HyperLayer file: W record at volume offset %d '
                                  'is not followed by a newline (file offset %d)' % (offset, self.pos))
            self.hasher.submit(b'\n')
            self.pos += 1
            self.counts['data'] += 1
            if self.counts['data'] > self.delta_blocks:
                raise FormatError('corrupt HyperLayer file: more W records than the %d the header announces'
                                  % self.delta_blocks)
            line = self._line()
        if self.counts['data'] != self.delta_blocks:
            raise FormatError('truncated HyperLayer file: %d W records, the header announces %d'
                              % (self.counts['data'], self.delta_blocks))
        self.size = self.pos
        self.sha1 = self.hasher.result().hexdigest()

    def _payload(self, offset, length):
        done = 0
        while done < length:
            n = min(MAX_EXTENT, length - done)
            buf = self.hasher.buffer()
            view = memoryview(buf)[:n]
            got = self._fill(view)
            if got != n:
                self.hasher.release(buf)
                raise FormatError('truncated HyperLayer file: W record at volume offset %d ends after %d of '
                                  '%d bytes' % (offset, done + got, length))
            self.hasher.submit(view, buf)
            self.data_bytes += n
            yield 'data', offset + done, n, view
            done += n

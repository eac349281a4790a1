# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""What both diff formats share: the header model and its one schema, the limits a reader
enforces on a hostile file, the digest of a byte range, and the stream writer and reader
bases (every byte hashed into the stream's SHA-1 on a second core).
"""

from __future__ import annotations

import hashlib
import json
import zlib

from ansible_collections.lvdiff.thin.plugins.module_utils._chunkcopy import (
    MAX_EXTENT, MAX_OFFSET, BufferedHasher, Closing, fill, lazy_buffer, read_exact, write_all)
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import FormatError, LvdiffError
from ansible_collections.lvdiff.thin.plugins.module_utils._seal import (
    ALGORITHMS as SEAL_ALGORITHMS, KEY_ID_BYTES, SALT_BYTES, SCRYPT, scrypt_problem)
from ansible_collections.lvdiff.thin.plugins.module_utils._zstd import (
    ALGORITHM as ZSTD, MAX_LEVEL as ZSTD_MAX_LEVEL, MIN_LEVEL as ZSTD_MIN_LEVEL)

TOOL_VERSION = 'lvdiff.thin 0.1.0'
FORMAT_VERSION = 1  # of the lvdiff format, the default a DiffHeader carries
FORMAT_VERSIONS = (1, 2)  # what our lvdiff reader reads; 2 only for compressed or encrypted files
CREATED_FORMAT = '%Y-%m-%dT%H:%M:%SZ'  # a header's creation time (UTC), as our writers record it
CHECK_DIGESTS = {'sha256': 32, 'crc32': 4}
# Caps on what a hostile file can make a reader hold or parse (docs/format.md): a header is
# small metadata, so its size and its number of pairs are bounded, in both formats.
MAX_HEADER = 1 << 20
MAX_PAIRS = 4096
# Sizes and offsets: at most MAX_OFFSET (_chunkcopy); chunk sizes: what LVM allows.
MAX_CHUNK = 1 << 30


class DiffHeader:
    """What a diff says about itself, whatever its format.

    volume: {'name', 'uuid', 'thin_id', 'size'}; base: the same or None (full image);
    sizes in bytes. check_digest: how CHECK digests are computed ('sha256', or
    'crc32' as 4 big-endian bytes for HyperLayer files). compression and encryption:
    None, or what a version 2 file says about them (the writer fills them in).
    """

    FIELDS = ('format', 'format_version', 'tool', 'created', 'volume', 'base', 'chunk_size',
              'checksum_level', 'sample_seed', 'check_digest', 'pool_transaction', 'pairs',
              'compression', 'encryption')
    DEFAULTS = {'tool': TOOL_VERSION, 'created': None, 'base': None, 'sample_seed': 0,
                'check_digest': 'sha256', 'pool_transaction': None, 'compression': None, 'encryption': None}
    _V2_FIELDS = ('compression', 'encryption')

    def __init__(self, volume, chunk_size, base=None, checksum_level=2, sample_seed=0, pairs=None,
                 created=None, tool=TOOL_VERSION, check_digest='sha256', pool_transaction=None,
                 format='lvdiff', format_version=FORMAT_VERSION, compression=None, encryption=None):
        self.format = format
        self.format_version = format_version
        self.tool = tool
        self.created = created
        self.volume = dict(volume)
        self.base = dict(base) if base is not None else None
        self.chunk_size = chunk_size
        self.checksum_level = checksum_level
        self.sample_seed = sample_seed
        self.check_digest = check_digest
        self.pool_transaction = pool_transaction
        self.pairs = dict(pairs or {})
        self.compression = compression
        self.encryption = encryption

    @property
    def incremental(self):
        return self.base is not None

    def as_dict(self):
        return dict((k, getattr(self, k)) for k in self.FIELDS)

    def __eq__(self, other):
        return isinstance(other, DiffHeader) and self.as_dict() == other.as_dict()

    def __repr__(self):
        return 'DiffHeader(%r)' % (self.as_dict(),)

    def _json(self):
        d = self.as_dict()
        del d['format'], d['format_version']
        if self.format_version == 1:  # byte for byte what version 1 writers always wrote
            for key in self._V2_FIELDS:
                del d[key]
        return json.dumps(d, ensure_ascii=False, sort_keys=True, separators=(',', ':')).encode('utf-8')

    def validate(self):
        """Raise FormatError unless every field has its type and range (see validate_fields)."""
        validate_fields(self.as_dict())
        return self

    @classmethod
    def _from_json(cls, body, version=FORMAT_VERSION):
        """The header in a HEADER record's JSON body, of a file of this format version."""
        try:
            d = json.loads(bytes(body).decode('utf-8'), object_pairs_hook=_no_duplicates)
        except (UnicodeDecodeError, ValueError) as e:
            raise FormatError('diff header is not valid UTF-8 JSON: %s' % e)
        except RecursionError:  # the C decoder counts its depth: deep nesting ends here, safely
            raise FormatError('diff header is not valid JSON: nested too deeply')
        if not isinstance(d, dict):
            raise FormatError('diff header is not a JSON object')
        for key in cls._V2_FIELDS:
            if version == 1 and key in d:
                raise FormatError('diff header: a version 1 file carries %r, which only version 2 files have' % key)
            if version == 2 and key not in d:
                raise FormatError('diff header: a version 2 file must say %r (null or an object)' % key)
        if version == 2 and d['compression'] is None and d['encryption'] is None:
            raise FormatError('diff header: a version 2 file with neither compression nor encryption '
                              '(such a file is written as version 1)')
        known = dict(cls.DEFAULTS)
        known.update((k, d[k]) for k in cls.FIELDS if k in d and k not in ('format', 'format_version'))
        known['format_version'] = version
        validate_fields(known)
        return cls(**known)


def _no_duplicates(pairs):
    d = dict(pairs)
    if len(d) != len(pairs):
        raise FormatError('diff header: a JSON object has a key twice')
    return d


def _field(d, key, types, prefix='', lo=0, hi=MAX_OFFSET):
    """d[key], checked: one of types (None among them: may be null or absent); an int
    (never a bool) within [lo, hi]."""
    v = d.get(key)
    what = 'diff header: %s%s' % (prefix, key)
    if v is None:
        if None in types:
            return None
        raise FormatError('%s missing' % what)
    kinds = tuple(t for t in types if t is not None)
    if isinstance(v, bool) or not isinstance(v, kinds):
        expected = ' or '.join(_TYPE_NAMES[t] for t in types)
        raise FormatError('%s is %s, not %s' % (what, _TYPE_NAMES.get(type(v), type(v).__name__), expected))
    if isinstance(v, int) and not lo <= v <= hi:
        raise FormatError('%s %d is out of its range %d to %d' % (what, v, lo, hi))
    return v


_TYPE_NAMES = {str: 'a string', int: 'an integer', dict: 'an object', None: 'null', bool: 'true or false',
               float: 'a fractional number', list: 'an array'}


def _size(d, key, prefix, types=(int,)):
    """A volume size: a positive multiple of 512 that off_t holds (a negative one would make
    lvresize shrink by that much)."""
    v = _field(d, key, types, prefix, 512)
    if v is not None and v % 512:
        raise FormatError('diff header: %s%s %d is not a multiple of 512' % (prefix, key, v))
    return v


def validate_fields(d):
    """The one schema of a diff header, for both formats: every field's type and range.
    Whatever apply or lvpatch could trip on later is refused here, at header time."""
    _field(d, 'tool', (str, None))
    _field(d, 'created', (str, None))
    volume = _field(d, 'volume', (dict,))
    _field(volume, 'name', (str,), 'volume.')
    _field(volume, 'uuid', (str,), 'volume.')
    _field(volume, 'thin_id', (int, None), 'volume.')
    _size(volume, 'size', 'volume.')
    base = _field(d, 'base', (dict, None))
    if base is not None:
        _field(base, 'name', (str, None), 'base.')
        _field(base, 'uuid', (str,), 'base.')
        _field(base, 'thin_id', (int, None), 'base.')
        _size(base, 'size', 'base.', (int, None))
    chunk = _field(d, 'chunk_size', (int,), '', 512, MAX_CHUNK)
    if chunk % 512:
        raise FormatError('diff header: chunk_size %d is not a positive multiple of 512' % chunk)
    _field(d, 'checksum_level', (int,), '', 0, 3)
    _field(d, 'sample_seed', (int,))
    if _field(d, 'check_digest', (str,)) not in CHECK_DIGESTS:
        raise FormatError('diff header: unknown check digest %r' % (d['check_digest'],))
    _field(d, 'pool_transaction', (int, None))
    pairs = _field(d, 'pairs', (dict,))
    if len(pairs) > MAX_PAIRS:
        raise FormatError('diff header: %d pairs, more than the %d a header may hold' % (len(pairs), MAX_PAIRS))
    for key, value in pairs.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise FormatError('diff header: pair %r is not text to text' % (key,))
    compression = _object(d, 'compression', ('algorithm', 'level'))
    encryption = _object(d, 'encryption', ('algorithm', 'key_id', 'file_salt', 'kdf'))
    if (compression or encryption) and d.get('format_version', FORMAT_VERSION) == 1:
        raise FormatError('diff header: compression and encryption need format version 2, not 1')
    if compression is not None:
        if _field(compression, 'algorithm', (str,), 'compression.') != ZSTD:
            raise FormatError('diff header: unknown compression algorithm %r (this reader knows %s)'
                              % (compression['algorithm'], ZSTD))
        _field(compression, 'level', (int,), 'compression.', ZSTD_MIN_LEVEL, ZSTD_MAX_LEVEL)
    if encryption is not None:
        if _field(encryption, 'algorithm', (str,), 'encryption.') not in SEAL_ALGORITHMS:
            raise FormatError('diff header: unknown encryption algorithm %r (this reader knows %s)'
                              % (encryption['algorithm'], ', '.join(SEAL_ALGORITHMS)))
        _hex(encryption, 'key_id', KEY_ID_BYTES, 'encryption.')
        _hex(encryption, 'file_salt', SALT_BYTES, 'encryption.')
        kdf = _object(encryption, 'kdf', ('algorithm', 'salt', 'n', 'r', 'p'), 'encryption.')
        if kdf is not None:
            if _field(kdf, 'algorithm', (str,), 'encryption.kdf.') != SCRYPT:
                raise FormatError('diff header: unknown key derivation %r (this reader knows %s)'
                                  % (kdf['algorithm'], SCRYPT))
            _hex(kdf, 'salt', SALT_BYTES, 'encryption.kdf.')
            problem = scrypt_problem(*(_field(kdf, k, (int,), 'encryption.kdf.', 1) for k in 'nrp'))
            if problem:
                raise FormatError('diff header: encryption.kdf refused: %s' % problem)


def _object(d, key, keys, prefix=''):
    """d[key]: null, or an object of exactly these keys (what a file encrypts with is never guessed at:
    a key this reader does not know is refused, not ignored)."""
    v = _field(d, key, (dict, None), prefix)
    if v is not None and sorted(v) != sorted(keys):
        raise FormatError('diff header: %s%s has the keys %s, not %s' % (prefix, key, ', '.join(sorted(v)) or 'none',
                                                                         ', '.join(keys)))
    return v


def _hex(d, key, nbytes, prefix):
    v = _field(d, key, (str,), prefix)
    if len(v) != 2 * nbytes or v.strip('0123456789abcdef'):
        raise FormatError('diff header: %s%s %r is not %d lowercase hex digits' % (prefix, key, v[:80], 2 * nbytes))


def digest_of_range(algorithm, fd, offset, length, buf):
    """Digest (crc32 or sha256) of bytes [offset, offset+length) of fd, read through buf in pieces:
    a HyperLayer check covers a whole chunk, which can be far larger than any buffer."""
    crc, sha = 0, hashlib.sha256()
    view = memoryview(buf)
    done = 0
    while done < length:
        piece = view[:min(len(view), length - done)]
        read_exact(fd, piece, offset + done)
        if algorithm == 'crc32':
            crc = zlib.crc32(piece, crc)
        else:
            sha.update(piece)
        done += len(piece)
    return crc.to_bytes(4, 'big') if algorithm == 'crc32' else sha.digest()


# --- writing -------------------------------------------------------------------------


class StreamWriter:
    """What both diff writers share: every byte goes to out_fd and into a SHA-1 of the
    whole stream, computed on a second core. End every writer with finish() or abort():
    both stop the hashing thread."""

    _bufsize = MAX_EXTENT

    def __init__(self, out_fd, header):
        header.validate()  # never write a header that a reader refuses
        self.fd = out_fd
        self.header = header
        self.size = 0
        self.hasher = BufferedHasher(hashlib.sha1(), self._bufsize)

    def _emit(self, *parts):
        write_all(self.fd, parts)
        for p in parts:
            self.hasher.submit(bytes(p))  # a copy: callers may reuse their buffers at once
            self.size += len(p)

    def _read_pooled(self, fd, offset, length):
        """(buffer from the hash pool, view of its first length bytes read from fd at offset)."""
        buf = self.hasher.buffer()
        view = memoryview(buf)[:length]
        try:
            read_exact(fd, view, offset)
        except BaseException:
            self.hasher.release(buf)
            raise
        return buf, view

    def _digest_pooled(self, fd, offset, length, algorithm):
        """The digest of a range of fd, read through a pool buffer."""
        buf = self.hasher.buffer()
        try:
            return digest_of_range(algorithm, fd, offset, length, buf)
        finally:
            self.hasher.release(buf)

    def _emit_views(self, *parts):
        """_emit(*parts) without copying them for the hash: the caller keeps every buffer behind them
        unchanged until it is hashed (submit(b'', buf) then gives a pool buffer back in order)."""
        write_all(self.fd, parts)
        for p in parts:
            self.hasher.submit(p)
            self.size += len(p)

    def _emit_pooled(self, buf, view, head=b'', tail=b''):
        """_emit(head, view, tail) in one writev, hashing view without a copy; buf, the
        pool buffer behind view, goes back to the pool once hashed."""
        try:
            write_all(self.fd, (head, view, tail))
        except BaseException:
            self.hasher.release(buf)
            raise
        if head:
            self.hasher.submit(head)
        self.hasher.submit(view, buf)
        if tail:
            self.hasher.submit(tail)
        self.size += len(head) + len(view) + len(tail)

    def finish(self):
        """(sha1 hex of the whole stream, its size)."""
        sha1 = self.hasher.result().hexdigest()
        self.hasher.close()
        return sha1, self.size

    def abort(self):
        self.hasher.close()


# --- reading -------------------------------------------------------------------------


class HeaderHasher:
    """BufferedHasher's interface without its thread, for reading a header: a reader that
    is asked only for its header (or fails on it) never starts a thread. events() hands
    the hash over to a BufferedHasher."""

    def __init__(self, hashobj, bufsize):
        self.hashobj = hashobj
        self._bufsize = bufsize

    def buffer(self):
        return lazy_buffer(self._bufsize)

    def submit(self, data, buf=None):
        self.hashobj.update(data)

    def release(self, buf):
        pass

    def result(self):
        return self.hashobj

    def close(self):
        pass


class StreamReader(Closing):
    """What both diff readers share, beside StreamWriter: the header is read and checked at
    construction, once (no thread yet); events() starts the hashing thread and stops it when
    it ends; close() (or a with block) stops it if events() was left early or never run."""

    _bufsize = MAX_EXTENT
    encrypted = compressed = False

    def __init__(self, f, key=None):
        self.f = f
        self.key = key
        # For messages: the file's path when f has one.
        name = getattr(f, 'name', None)
        self.name = name if isinstance(name, str) else 'the diff'
        self.pos = 0
        self.size = None
        self.sha1 = None
        self.counts = {'check': 0, 'data': 0, 'discard': 0}
        self.data_bytes = self.discard_bytes = 0
        self.hasher = HeaderHasher(hashlib.sha1(), self._bufsize)
        self._started = False

    def check_key(self):
        """Refuse what events(decode=True) refuses before its first event, for a caller to ask before it makes
        anything: an encrypted file without a key, an unencrypted one with a key."""
        if self.encrypted and self.key is None:
            raise LvdiffError('%s is encrypted with key id %s: give encrypt_key_file or encrypt_passphrase'
                              % (self.name, self.header.encryption['key_id']))
        if self.key is not None and not self.encrypted:
            raise LvdiffError('%s is not encrypted, but a key was given (%s): refused, since anyone can write an '
                              'unencrypted file in place of an encrypted one; read it without a key if you trust '
                              'where it comes from' % (self.name, self.key.describe()))

    def events(self, decode=True):
        """Each record, verified, as (kind, offset, length, payload). decode=False: what a host without the
        key (or without zstandard) can verify, the payloads of DATA and CHECK records None (see
        docs/format.md). Refused before any event: decoding an encrypted file without a key, or any
        unencrypted file with one (it proves nothing about who wrote it)."""
        if self._started:
            raise LvdiffError('a diff reader reads its records once')
        self._started = True
        if decode:
            self.check_key()
        self.hasher = BufferedHasher(self.hasher.hashobj, self._bufsize, nbuf=3)
        try:
            yield from self._events(decode)
        finally:
            self.hasher.close()

    def _fill(self, view):
        """Read view full from the stream, or up to its end: the bytes read (fewer only at the
        end). The stream position counts them."""
        got = self.f.readinto(view)
        if got < len(view):
            got = fill(self.f, view, got)
        self.pos += got
        return got

    def close(self):
        self.hasher.close()

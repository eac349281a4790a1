# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Encryption at rest of format 2 diffs (docs/format.md, "Version 2"): the master key (a key
file or a passphrase through scrypt), its key id, the per-file record key (HKDF-SHA256 with
the file's salt), and the AEAD that seals each record: nonce = the record's index, AAD = its
head as stored (the preamble too for record 0), so a record changed, moved, dropped,
duplicated or taken from another file fails its tag.

Key ids, HKDF and scrypt are stdlib (a keyless host and a wrong key never need more);
the AEAD is ``cryptography``'s, imported by the first Seal: MissingLibraryError only when a
record is to be sealed or opened.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from importlib.util import find_spec

from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError, MissingLibraryError, WrongKeyError

# cryptography's AEAD classes, loaded by the first Seal (_load_aead): a process that never seals or opens a
# record (format 1, compressed only, a keyless check) does not carry them, 9 MiB of RSS. At import, only
# whether the library is there.
InvalidTag = Cipher = algorithms = modes = ChaCha20Poly1305 = AESGCM = None
try:
    HAS_CRYPTOGRAPHY = find_spec('cryptography') is not None
    CRYPTOGRAPHY_IMPORT_ERROR = None if HAS_CRYPTOGRAPHY else ImportError('No module named cryptography')
except (ImportError, ValueError) as e:  # pragma: no cover - a broken installation
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = e

AES_GCM = 'aes-256-gcm'
CHACHA = 'chacha20-poly1305'
ALGORITHMS = (AES_GCM, CHACHA)  # what a reader opens; the writer seals with WRITE_ALGORITHM
WRITE_ALGORITHM = AES_GCM
TAG = 16
# A buffer that update_into fills must be this much longer than the data (cryptography's rule:
# a block minus one), plus the tag we append.
SEAL_SLACK = 64
SALT_BYTES = 16
KEY_ID_BYTES = 16
_KEY_BYTES = 32
_RECORD_KEY_INFO = b'lvdiff.thin v2 record key'
_KEY_ID_INFO = b'lvdiff.thin key id'

SCRYPT = 'scrypt'
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 15, 8, 1  # 32 MiB, about 0.1 s: what the writer asks for
SCRYPT_MIN_N = 1 << 14
SCRYPT_MAX_MEMORY = 64 << 20  # 128 * n * r * p: a hostile header cannot ask a reader for more


def scrypt_problem(n, r, p):
    """Why these scrypt parameters are refused, or None: work and memory stay bounded whatever a header says."""
    if n < SCRYPT_MIN_N or n & (n - 1):
        return 'n %d is not a power of two of at least %d' % (n, SCRYPT_MIN_N)
    if r < 1 or p < 1:
        return 'r and p must be at least 1'
    if 128 * n * r * p > SCRYPT_MAX_MEMORY:
        return ('n=%d, r=%d, p=%d ask for %d MiB (128*n*r*p bytes); a reader allows at most %d MiB'
                % (n, r, p, 128 * n * r * p >> 20, SCRYPT_MAX_MEMORY >> 20))
    return None


def _scrypt(passphrase, salt, n, r, p):
    if not hasattr(hashlib, 'scrypt'):
        raise LvdiffError('a passphrase needs scrypt, which this Python lacks (it needs OpenSSL 1.1 or later); '
                          'use a key file')
    # OpenSSL's own need: 128*r*(n+p+2) bytes; a margin above it, never the default 32 MiB cap.
    return hashlib.scrypt(passphrase, salt=salt, n=n, r=r, p=p, dklen=_KEY_BYTES,
                          maxmem=128 * r * (n + p + 2) + (1 << 20))


def hkdf_sha256(ikm, salt, info):
    """HKDF-SHA256 (RFC 5869) of 32 bytes: one expand block."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b'\x01', hashlib.sha256).digest()


def key_id(master):
    return hmac.new(master, _KEY_ID_INFO, hashlib.sha256).digest()[:KEY_ID_BYTES].hex()


def nonce(index):
    return bytes(4) + index.to_bytes(8, 'big')


class Key:
    """A master key as given: 32 bytes from a key file, or a passphrase (a master key per file,
    through scrypt with the file's salt). describe() says which, for messages; never the secret."""

    def __init__(self, secret, description, passphrase=False, salts=None):
        self._secret = secret
        self._description = description
        self.passphrase = passphrase
        self._salts = salts

    @classmethod
    def from_file(cls, path):
        """The key in file path: exactly 32 raw bytes, or 64 hex digits and at most one newline. A file
        that group or others may read or write is refused: the key would not be secret."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as e:
            raise LvdiffError('cannot open key file %s: %s' % (path, e.strerror))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise LvdiffError('key file %s is not a regular file' % path)
            if st.st_mode & 0o077:
                raise LvdiffError('key file %s is readable or writable by group or others (mode %04o): chmod 600 %s'
                                  % (path, stat.S_IMODE(st.st_mode), path))
            data = os.read(fd, 2 * _KEY_BYTES + 2)  # one byte more than the longest valid form
        except OSError as e:
            raise LvdiffError('cannot read key file %s: %s' % (path, e.strerror))
        finally:
            os.close(fd)
        return cls(_parse_key(data, path), 'key file %s' % path)

    @classmethod
    def from_passphrase(cls, text):
        if not isinstance(text, str) or not text:
            raise LvdiffError('the passphrase is empty: give a non-empty passphrase or a key file')
        return cls(text.encode('utf-8'), 'passphrase', passphrase=True)

    @classmethod
    def from_options(cls, key_file=None, passphrase=None):
        """The Key that a module's options name, or None for no encryption."""
        if key_file is not None and passphrase is not None:
            raise LvdiffError('give encrypt_key_file or encrypt_passphrase, not both')
        if key_file is not None:
            return cls.from_file(key_file)
        if passphrase is not None:
            return cls.from_passphrase(passphrase)
        return None

    def describe(self):
        return self._description

    def fixed_id(self):
        """The key id of every file this key encrypts, or None for a passphrase (its id depends on each
        file's salt)."""
        return None if self.passphrase else key_id(self._secret)

    def with_fixed_salts(self, file_salt, kdf_salt=None):
        """This key, writing files with these salts instead of random ones. For tests and the worked example
        of docs/format.md only: files that share a salt share their record key."""
        return Key(self._secret, self._description, self.passphrase, (file_salt, kdf_salt))

    def _salt(self, which):
        fixed = self._salts[which] if self._salts else None
        return fixed if fixed is not None else os.urandom(SALT_BYTES)


def _parse_key(data, path):
    if len(data) == _KEY_BYTES:
        return data
    text = data[:-1] if data.endswith(b'\n') else data
    if len(text) == 2 * _KEY_BYTES:
        try:
            return bytes.fromhex(text.decode('ascii'))
        except ValueError:  # UnicodeDecodeError included
            pass
    size = len(data) if len(data) <= 2 * _KEY_BYTES + 1 else 'more than %d' % (2 * _KEY_BYTES + 1)
    raise LvdiffError('key file %s holds %s bytes: a key file holds exactly 32 raw bytes, or 64 hex digits with '
                      'at most one trailing newline (e.g. made by: head -c 32 /dev/urandom > %s)' % (path, size, path))


def seal_for_writing(key):
    """(Seal, the header's "encryption" object) for a new file: a new file salt (and kdf salt), so that
    every file has its own record key."""
    encryption = {'algorithm': WRITE_ALGORITHM, 'file_salt': key._salt(0).hex(), 'kdf': None}
    if key.passphrase:
        kdf = {'algorithm': SCRYPT, 'salt': key._salt(1).hex(), 'n': SCRYPT_N, 'r': SCRYPT_R, 'p': SCRYPT_P}
        encryption['kdf'] = kdf
        master = _scrypt(key._secret, bytes.fromhex(kdf['salt']), SCRYPT_N, SCRYPT_R, SCRYPT_P)
    else:
        master = key._secret
    encryption['key_id'] = key_id(master)
    return Seal(encryption['algorithm'], hkdf_sha256(master, bytes.fromhex(encryption['file_salt']),
                                                     _RECORD_KEY_INFO)), encryption


def encryption_placeholder(key):
    """The header's "encryption" object that seal_for_writing(key) would make, with zeros for the salts and
    key id: the same JSON size, for size estimates. No key derivation."""
    kdf = {'algorithm': SCRYPT, 'salt': '0' * 2 * SALT_BYTES, 'n': SCRYPT_N, 'r': SCRYPT_R, 'p': SCRYPT_P}
    return {'algorithm': WRITE_ALGORITHM, 'file_salt': '0' * 2 * SALT_BYTES, 'kdf': kdf if key.passphrase else None,
            'key_id': '0' * 2 * KEY_ID_BYTES}


def record_key_for_reading(key, encryption, name):
    """The record key of the file name whose header says encryption (validated), if key is the one it was
    made with: WrongKeyError otherwise, before any tag is checked. Stdlib only: Seal(algorithm, record key)
    opens the records."""
    kdf = encryption['kdf']
    wanted = encryption['key_id']
    if kdf is None and key.passphrase:
        raise WrongKeyError('wrong key: %s was encrypted with a key file (key id %s), not a passphrase: give its '
                            'key_file' % (name, wanted))
    if kdf is not None and not key.passphrase:
        raise WrongKeyError('wrong key: %s was encrypted with a passphrase (key id %s), not a key file: give the '
                            'passphrase' % (name, wanted))
    if kdf is None:
        master = key._secret
    else:
        master = _scrypt(key._secret, bytes.fromhex(kdf['salt']), kdf['n'], kdf['r'], kdf['p'])
    given = key_id(master)
    if not hmac.compare_digest(given, wanted):
        if key.passphrase:
            raise WrongKeyError('wrong passphrase: %s was encrypted with key id %s; the passphrase given has id %s '
                                '(with this file\'s salt)' % (name, wanted, given))
        raise WrongKeyError('wrong key: %s was encrypted with key id %s; the key given (%s) has id %s'
                            % (name, wanted, key.describe(), given))
    return hkdf_sha256(master, bytes.fromhex(encryption['file_salt']), _RECORD_KEY_INFO)


def _load_aead():
    """Import cryptography's AEAD classes once (MissingLibraryError if they cannot be)."""
    global InvalidTag, Cipher, algorithms, modes, ChaCha20Poly1305, AESGCM  # pylint: disable=global-statement
    if not HAS_CRYPTOGRAPHY:  # first: the flag is the truth (and what the tests set)
        raise MissingLibraryError('cryptography', 'an encrypted diff', CRYPTOGRAPHY_IMPORT_ERROR)
    if Cipher is not None:
        return
    try:
        from cryptography.exceptions import InvalidTag as _invalid_tag
        from cryptography.hazmat.primitives.ciphers import Cipher as _cipher, algorithms as _algorithms, modes as _modes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM as _aesgcm, ChaCha20Poly1305 as _chacha
    except ImportError as e:
        raise MissingLibraryError('cryptography', 'an encrypted diff', e)
    InvalidTag, algorithms, modes, ChaCha20Poly1305, Cipher = _invalid_tag, _algorithms, _modes, _chacha, _cipher
    AESGCM = _aesgcm


class BadTag(ValueError):
    """A record whose tag does not match: changed, moved, dropped, duplicated or from another file."""


class Seal:
    """The AEAD of one file, keyed with its record key. Records are sealed in one of two ways:
    CHECK and DATA payloads encrypted (ciphertext || tag), the others kept plaintext and
    authenticated (payload || tag of an empty plaintext with aad || payload as its AAD)."""

    def __init__(self, algorithm, record_key):
        _load_aead()
        self.algorithm = algorithm
        self._key = record_key
        # One-shot encrypt_into/decrypt_into (cryptography 44+) fill our buffers with no copy: 2.4 GB/s here
        # against 1.4 for AES-GCM through the Cipher interface (update_into), the way for older releases
        # (AESGCM.encrypt copies each record several times: 0.5 GB/s with Debian 12's cryptography 38).
        self._chacha = ChaCha20Poly1305(record_key) if algorithm == CHACHA else None
        aead = self._chacha or AESGCM(record_key)
        self._into = aead if hasattr(aead, 'encrypt_into') else None

    def encrypt_into(self, index, aad, payload, out):
        """Write payload's ciphertext and tag into out (len(payload) + SEAL_SLACK bytes at least):
        their length."""
        n = len(payload)
        if self._into is not None:
            return self._into.encrypt_into(nonce(index), payload, bytes(aad), memoryview(out)[:n + TAG])
        if self._chacha is not None:
            out[:n + TAG] = self._chacha.encrypt(nonce(index), bytes(payload), bytes(aad))
            return n + TAG
        enc = Cipher(algorithms.AES(self._key), modes.GCM(nonce(index))).encryptor()
        enc.authenticate_additional_data(bytes(aad))
        done = enc.update_into(payload, out)
        enc.finalize()
        out[done:done + TAG] = enc.tag
        return done + TAG

    def encrypt(self, index, aad, payload):
        out = bytearray(len(payload) + SEAL_SLACK)
        return bytes(out[:self.encrypt_into(index, aad, payload, out)])

    def tag(self, index, aad, payload):
        """The tag that authenticates a plaintext payload."""
        return self.encrypt(index, bytes(aad) + bytes(payload), b'')

    def decrypt_into(self, index, aad, body, out):
        """The plaintext of body (ciphertext || tag) as a view of out, or BadTag. Nothing is returned
        before the tag is checked."""
        n = len(body) - TAG
        try:
            if self._into is not None:
                view = memoryview(out)[:n]
                self._into.decrypt_into(nonce(index), body, bytes(aad), view)
                return view
            if self._chacha is not None:
                plain = self._chacha.decrypt(nonce(index), bytes(body), bytes(aad))
                out[:n] = plain
                return memoryview(out)[:n]
            dec = Cipher(algorithms.AES(self._key), modes.GCM(nonce(index), bytes(body[n:]))).decryptor()
            dec.authenticate_additional_data(bytes(aad))
            done = dec.update_into(body[:n], out)
            dec.finalize()
        except InvalidTag:
            raise BadTag()
        return memoryview(out)[:done]

    def decrypt(self, index, aad, body):
        out = bytearray(len(body) + SEAL_SLACK)
        return bytes(self.decrypt_into(index, aad, body, out))

    def check_tag(self, index, aad, payload, tag):
        if not hmac.compare_digest(self.tag(index, aad, payload), bytes(tag)):
            raise BadTag()

"""Format version 2 (compressed and/or encrypted lvdiff files): round trips of every combination,
what the writer stores, keys and key files, the size estimate, missing libraries."""

import hashlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _format, _seal, _zstd
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError, MissingLibraryError
from ansible_collections.lvdiff.thin.plugins.module_utils._plan import Plan

from ansible_collections.lvdiff.thin.tests.support.diffs import lvdiff_records, make_diff
from ansible_collections.lvdiff.thin.tests.support.volumes import CONTENTS, VolumePair, sha256_file

KIB = 1024
TEST_KEY = bytes(range(32))


def key_file(directory, data=TEST_KEY, name='test.key', mode=0o600):
    path = os.path.join(str(directory), name)
    with open(path, 'wb') as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def keys(directory):
    """The Key of each mode that encrypts, made once per test (a passphrase costs one scrypt per file)."""
    return {'file': _seal.Key.from_file(key_file(directory)), 'passphrase': _seal.Key.from_passphrase('correct horse')}


# mode: (compress_level, which key)
MODES = {'none': (None, None), 'zstd': (3, None), 'key file': (None, 'file'), 'passphrase': (None, 'passphrase'),
         'zstd+key': (1, 'file'), 'zstd19+passphrase': (19, 'passphrase')}


def write(pair, path, mode, key_set, level=2, full=False):
    compress_level, which = MODES[mode]
    key = key_set[which] if which else None
    return make_diff(pair, path, level=level, full=full, compress_level=compress_level, key=key), key


def events_of(path, key=None):
    with _diffio.open_diff(path, key) as reader:
        return [(k, o, n, bytes(p) if p is not None else None) for k, o, n, p in reader.events()]


def apply_to(pair, tmp_path, path, key=None, full=False):
    target = str(tmp_path / 'target.img')
    if full:
        open(target, 'wb').close()
    else:
        subprocess.run(['cp', '--sparse=always', pair.base, target], check=True)
    fd = os.open(target, os.O_RDWR)
    try:
        result = _diffio.apply_file(path, fd, key=key)
    finally:
        os.close(fd)
    return target, result


def flags_of(path):
    """{record type letter: set of flags} of the lvdiff file at path."""
    out = {}
    for rtype, flags, reserved, offset, length, body in lvdiff_records(open(path, 'rb').read()):
        out.setdefault(chr(rtype), set()).add(flags)
    return out


@pytest.fixture
def pair64(tmp_path):
    """64 KiB chunks, half compressible and half random, with overwrites, discards and new chunks."""
    base = {c: ('b', c) for c in range(24)}
    src = dict(base)
    for c in (1, 2, 3, 4, 9, 16, 17):
        src[c] = ('s', c)
    for c in (6, 7, 20):
        del src[c]
    for c in (25, 26):
        src[c] = ('n', c)
    return VolumePair(tmp_path, 64 * KIB, base, src, base_chunks=24, src_chunks=28, content=CONTENTS['mixed'])


@pytest.mark.parametrize('mode', sorted(MODES))
@pytest.mark.parametrize('full', [False, True])
def test_round_trip_every_mode(pair64, tmp_path, mode, full):
    key_set = keys(tmp_path)
    v1 = str(tmp_path / 'v1.diff')
    v2 = str(tmp_path / 'v2.diff')
    make_diff(pair64, v1, level=3, full=full)
    written, key = write(pair64, v2, mode, key_set, level=3, full=full)
    data = open(v2, 'rb').read()
    assert written['sha1'] == hashlib.sha1(data).hexdigest() and written['size'] == len(data)
    version = 1 if mode == 'none' else 2
    assert data[8:12] == bytes([version, 0, 0, 0])
    if mode == 'none':
        assert data == open(v1, 'rb').read()  # byte for byte what version 1 writers write
    # the same records as the version 1 file of the same plan
    assert events_of(v2, key) == events_of(v1)
    target, result = apply_to(pair64, tmp_path, v2, key, full)
    assert sha256_file(target) == sha256_file(pair64.src)
    assert result['sha1'] == written['sha1']
    compress_level, which = MODES[mode]
    header = result['header']
    assert header['format_version'] == version
    assert header['compression'] == ({'algorithm': 'zstd', 'level': compress_level} if compress_level else None)
    assert result['compression'] == ('zstd' if compress_level else 'none')
    assert result['encryption'] == ('aes-256-gcm' if which else 'none')
    if which:
        enc = header['encryption']
        assert result['key_id'] == enc['key_id'] and len(enc['key_id']) == 32 and len(enc['file_salt']) == 32
        assert (enc['kdf'] is not None) == (which == 'passphrase')
        # every record sealed; nothing else set where nothing is compressed
        assert all(f & _format.SEALED for fl in flags_of(v2).values() for f in fl)
    else:
        assert result['key_id'] is None
    assert result['stored_data_bytes'] == written['stored_data_bytes']
    if compress_level:
        # the compressible half shrinks; consecutive pieces go out as GROUP records, each compressed
        groups = flags_of(v2).get('G')
        assert groups and all(f & _format.COMPRESSED for f in groups)
        assert written['stored_data_bytes'] < 0.6 * written['data_bytes']
        assert result['compression_ratio'] == round(written['data_bytes'] / written['stored_data_bytes'], 3) > 1.6
    else:
        assert written['stored_data_bytes'] == written['data_bytes'] and result['compression_ratio'] == 1.0


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_round_trips_v2(tmp_path, data):
    """Random volumes, both chunk sizes, every mode and content: a version 2 file reads back as the records of
    the version 1 file of the same plan, and applies to the source."""
    cs = data.draw(st.sampled_from([64 * KIB, 256 * KIB]))
    nbase = data.draw(st.integers(1, 12))
    nsrc = data.draw(st.integers(1, 12))
    base = {c: ('b', c) for c in data.draw(st.sets(st.integers(0, nbase - 1)))}
    src = {}
    for c in data.draw(st.sets(st.integers(0, nsrc - 1))):
        src[c] = base[c] if c in base and data.draw(st.booleans()) else ('s', c)
    content = data.draw(st.sampled_from(sorted(CONTENTS)))
    mode = data.draw(st.sampled_from(sorted(MODES)))
    full = data.draw(st.booleans())
    level = data.draw(st.integers(0, 3))
    sub = pathlib.Path(tempfile.mkdtemp(dir=str(tmp_path)))
    pair = VolumePair(sub, cs, base, src, base_chunks=nbase, src_chunks=nsrc, content=CONTENTS[content])
    key_set = {'file': _seal.Key(TEST_KEY, 'key file test'), 'passphrase': _seal.Key.from_passphrase('pw')}
    v1, v2 = str(sub / 'v1'), str(sub / 'v2')
    make_diff(pair, v1, level=level, full=full)
    # GROUP records of at most: the writer's 4 MiB, a few chunks, or none (one frame per record)
    group_bytes = data.draw(st.sampled_from([_format.GROUP_BYTES, 2 * cs, 0]))
    default, _format.GROUP_BYTES = _format.GROUP_BYTES, group_bytes
    try:
        written, key = write(pair, v2, mode, key_set, level=level, full=full)
    finally:
        _format.GROUP_BYTES = default
    assert events_of(v2, key) == events_of(v1)
    target, result = apply_to(pair, sub, v2, key, full)
    assert sha256_file(target) == sha256_file(pair.src)
    assert result['sha1'] == written['sha1']


def test_a_header_is_not_changed_for_the_caller_between_files(pair64, tmp_path):
    """The writer fills header.compression/encryption for each file: a header reused for a plain file after an
    encrypted one is version 1 again."""
    header = pair64.header()
    plan = Plan(pair64.cs, pair64.src_size, pair64.base_size).add_delta(pair64.delta())
    src, base = os.open(pair64.src, os.O_RDONLY), os.open(pair64.base, os.O_RDONLY)
    try:
        for kw, version in (({'compress_level': 3, 'key': _seal.Key(TEST_KEY, 'k')}, 2), ({}, 1)):
            out = str(tmp_path / ('v%d' % version))
            fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                _diffio.write_diff(fd, header, plan, src, base, **kw)
            finally:
                os.close(fd)
            assert open(out, 'rb').read()[8] == version and header.format_version == version
            assert (header.encryption is None) == (version == 1)
    finally:
        os.close(src)
        os.close(base)


def test_aes_gcm_is_the_standard_construction():
    """Our AES-256-GCM (cryptography's Cipher interface, to fill our own buffers) is byte for byte AESGCM,
    and a plaintext record's tag is AESGCM over an empty plaintext with aad || payload as AAD."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    key = os.urandom(32)
    seal = _seal.Seal(_seal.AES_GCM, key)
    payload, aad = os.urandom(100000), os.urandom(36)
    expected = AESGCM(key).encrypt(_seal.nonce(7), payload, aad)
    assert seal.encrypt(7, aad, payload) == expected
    assert seal.decrypt(7, aad, expected) == payload
    assert seal.tag(3, aad, payload) == AESGCM(key).encrypt(_seal.nonce(3), b'', aad + payload)
    assert _seal.nonce(258) == bytes(4) + b'\0\0\0\0\0\0\x01\x02'
    with pytest.raises(_seal.BadTag):
        seal.decrypt(8, aad, expected)  # another index: another nonce


def test_chacha20_poly1305_files_are_read(pair64, tmp_path, monkeypatch):
    """The reader opens either algorithm the header names; the writer writes AES-256-GCM."""
    key = _seal.Key(TEST_KEY, 'key file test')
    monkeypatch.setattr(_seal, 'WRITE_ALGORITHM', _seal.CHACHA)
    path = str(tmp_path / 'chacha.diff')
    make_diff(pair64, path, level=3, compress_level=3, key=key)
    monkeypatch.undo()
    target, result = apply_to(pair64, tmp_path, path, key)
    assert result['encryption'] == 'chacha20-poly1305'
    assert sha256_file(target) == sha256_file(pair64.src)


def test_key_derivation_matches_the_spec():
    """key id, HKDF and the record key as docs/format.md defines them, from RFC 5869's own test vector."""
    # RFC 5869 A.1 (SHA-256), first 32 bytes of its 42-byte OKM
    ikm, salt, info = bytes([0x0b] * 22), bytes(range(13)), bytes(range(0xf0, 0xfa))
    assert _seal.hkdf_sha256(ikm, salt, info).hex() == (
        '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf')
    import hmac
    assert _seal.key_id(TEST_KEY) == hmac.new(TEST_KEY, b'lvdiff.thin key id', 'sha256').hexdigest()[:32]


@pytest.mark.parametrize('data,ok', [
    (TEST_KEY, True),
    (TEST_KEY.hex().encode(), True),
    (TEST_KEY.hex().encode() + b'\n', True),
    (TEST_KEY.hex().upper().encode() + b'\n', True),
    (TEST_KEY.hex().encode() + b'\n\n', False),
    (TEST_KEY[:31], False),
    (TEST_KEY + b'\0', False),
    (b'', False),
    (b'g' * 64, False),
    (TEST_KEY.hex().encode() + b' ', False),
    (b'x' * 4096, False),
])
def test_key_file_forms(tmp_path, data, ok):
    path = key_file(tmp_path, data)
    if ok:
        key = _seal.Key.from_file(path)
        assert key._secret == TEST_KEY and key.describe() == 'key file %s' % path
    else:
        with pytest.raises(LvdiffError, match='a key file holds exactly 32 raw bytes, or 64 hex digits with at most '
                                              'one trailing newline'):
            _seal.Key.from_file(path)


@pytest.mark.parametrize('mode', [0o640, 0o604, 0o620, 0o602, 0o700 | 0o010])
def test_key_file_open_to_others_is_refused(tmp_path, mode):
    path = key_file(tmp_path, mode=mode)
    with pytest.raises(LvdiffError, match=r'key file %s is readable or writable by group or others \(mode 0%o\): '
                                          r'chmod 600 %s' % (path, mode, path)):
        _seal.Key.from_file(path)


def test_key_options(tmp_path):
    path = key_file(tmp_path)
    assert _seal.Key.from_options() is None
    assert _seal.Key.from_options(key_file=path).describe() == 'key file %s' % path
    assert _seal.Key.from_options(passphrase='p').describe() == 'passphrase'
    with pytest.raises(LvdiffError, match='give encrypt_key_file or encrypt_passphrase, not both'):
        _seal.Key.from_options(key_file=path, passphrase='p')
    with pytest.raises(LvdiffError, match='the passphrase is empty'):
        _seal.Key.from_options(passphrase='')
    with pytest.raises(LvdiffError, match='cannot open key file .*/missing: No such file'):
        _seal.Key.from_file(str(tmp_path / 'missing'))
    with pytest.raises(LvdiffError, match='is not a regular file'):
        _seal.Key.from_file('/dev/null')


@pytest.mark.parametrize('bad', [0, 20, True, '3', 3.0])
def test_compression_level_is_checked(pair64, tmp_path, bad):
    with pytest.raises(LvdiffError, match=r'compression level .*: zstd levels here are 1 to 19'):
        make_diff(pair64, str(tmp_path / 'x'), compress_level=bad)
    assert not os.path.exists(str(tmp_path / 'x'))


def test_hyperlayer_refuses_both_options(pair64, tmp_path):
    for kw in ({'compress_level': 3}, {'key': _seal.Key(TEST_KEY, 'k')}):
        with pytest.raises(LvdiffError, match='a HyperLayer file cannot be compressed or encrypted .* use format '
                                              'lvdiff to compress or encrypt'):
            make_diff(pair64, str(tmp_path / 'x.hl'), fmt='hyperlayer', **kw)


@pytest.mark.parametrize('mode', sorted(MODES))
def test_estimate_size(pair64, tmp_path, mode):
    """Exact, encrypted or not; an upper bound (the size uncompressed) where compressed."""
    key_set = keys(tmp_path)
    path = str(tmp_path / 'd')
    written, key = write(pair64, path, mode, key_set, level=2)
    header = pair64.header(level=2)
    plan = Plan(pair64.cs, pair64.src_size, pair64.base_size).add_delta(pair64.delta())
    estimate = _diffio.estimate_size(header, plan, compress_level=MODES[mode][0], key=key)
    if MODES[mode][0]:
        uncompressed = written['size'] - written['stored_data_bytes'] + written['data_bytes']
        assert written['size'] < estimate and abs(estimate - uncompressed) < 10
    else:
        assert estimate == written['size']
    assert header.format_version == 1 and header.encryption is None  # the caller's header is left as it was


def test_keyless_verify_of_an_encrypted_file(pair64, tmp_path):
    key = _seal.Key(TEST_KEY, 'key file test')
    path = str(tmp_path / 'd')
    written = make_diff(pair64, path, level=3, compress_level=3, key=key)
    with _diffio.open_diff(path) as reader:
        assert reader.encrypted and reader.compressed
        result = _diffio.verify(reader)
    assert result['decoded'] is False and result['sha1'] == written['sha1']
    assert result['records'] == {'check': 5, 'data': 4, 'discard': 4, 'group': 1}  # data: ranges, one GROUP
    assert result['stored_data_bytes'] == written['stored_data_bytes']
    assert result['compression_ratio'] == round(written['data_bytes'] / written['stored_data_bytes'], 3)
    with _diffio.open_diff(path) as reader:
        assert [e[3] for e in reader.events(decode=False) if e[0] != 'discard'] == [None] * 9
    with _diffio.open_diff(path, key) as reader:
        keyed = _diffio.verify(reader)
    assert keyed['decoded'] is True and keyed['records'] == result['records'] and keyed['sha1'] == result['sha1']


def test_compressed_file_verifies_without_zstandard_when_not_decoding(pair64, tmp_path, monkeypatch):
    path = str(tmp_path / 'd')
    make_diff(pair64, path, level=3, compress_level=3)
    monkeypatch.setattr(_zstd, 'HAS_ZSTANDARD', False)
    with _diffio.open_diff(path) as reader:
        assert _diffio.verify(reader, decode=False)['compression_ratio'] > 1
    with _diffio.open_diff(path) as reader:
        with pytest.raises(MissingLibraryError, match='reading a compressed diff .* needs the Python library '
                                                      'zstandard') as info:
            _diffio.verify(reader)
    assert info.value.lib == 'zstandard'


_WITHOUT = '''
import os, sys
sys.modules[%(lib)r] = None  # unimportable, as on a host without it
from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _seal
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import MissingLibraryError
from ansible_collections.lvdiff.thin.tests.support.diffs import make_diff
from ansible_collections.lvdiff.thin.tests.support.volumes import VolumePair
pair = VolumePair(__import__('pathlib').Path(%(tmp)r), 4096, {0: 'a', 1: 'b'}, {0: 'c', 1: 'b'}, 2, 2)
key = _seal.Key(bytes(32), 'k')
try:
    make_diff(pair, %(tmp)r + '/x', **%(kw)s)
except MissingLibraryError as e:
    print('refused', e.lib, os.path.exists(%(tmp)r + '/x'), e.msg)
with _diffio.open_diff(%(readable)r, key if %(readable_key)s else None) as reader:
    print('read', _diffio.verify(reader)['decoded'])
'''


@pytest.mark.parametrize('lib,kw,readable_mode', [
    ('zstandard', "{'compress_level': 3}", (None, 'file')),   # an uncompressed encrypted file needs no zstandard
    ('cryptography', "{'key': key}", (3, None)),               # a compressed plain file needs no cryptography
])
def test_missing_library(pair64, tmp_path, lib, kw, readable_mode):
    """With the library unimportable (the guarded import itself): asking for what needs it raises
    MissingLibraryError naming it, before a file is made; files that do not need it are read."""
    readable = str(tmp_path / 'readable.diff')
    key = _seal.Key(bytes(32), 'k')
    make_diff(pair64, readable, compress_level=readable_mode[0], key=key if readable_mode[1] else None)
    sub = tmp_path / 'sub'
    sub.mkdir()
    code = _WITHOUT % {'lib': lib, 'tmp': str(sub), 'kw': kw, 'readable': readable,
                       'readable_key': bool(readable_mode[1])}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith('refused %s False ' % lib) and 'needs the Python library %s' % lib in lines[0]
    assert lines[1] == 'read True'


def test_scrypt_parameters_written(pair64, tmp_path):
    path = str(tmp_path / 'd')
    make_diff(pair64, path, key=_seal.Key.from_passphrase('pw'))
    header = json.loads(lvdiff_records(open(path, 'rb').read())[0][5][:-16])
    kdf = header['encryption']['kdf']
    assert (kdf['algorithm'], kdf['n'], kdf['r'], kdf['p']) == ('scrypt', 1 << 15, 8, 1) and len(kdf['salt']) == 32
    # a new salt for every file: the same passphrase gives each file its own key id
    other = str(tmp_path / 'e')
    make_diff(pair64, other, key=_seal.Key.from_passphrase('pw'))
    second = json.loads(lvdiff_records(open(other, 'rb').read())[0][5][:-16])['encryption']
    assert second['kdf']['salt'] != kdf['salt'] and second['key_id'] != header['encryption']['key_id']
    assert second['file_salt'] != header['encryption']['file_salt']

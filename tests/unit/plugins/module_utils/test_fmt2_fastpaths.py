"""The ways format 2 saves time and memory (tests/bench, docs/benchmarks.md "Format 2"): a zstd frame
read in one call where zstandard can refuse bytes after it, records sealed and opened in place where
cryptography has encrypt_into/decrypt_into, and cryptography loaded only by the first Seal.
Each must read and refuse exactly what the slower way does."""

import os
import random
import subprocess
import sys

import pytest

from ansible_collections.lvdiff.thin.plugins.module_utils import _seal, _zstd

RECORD = 256 * 1024


def _record():
    rng = random.Random(5)
    words = [bytes(rng.choice(b'abcdefghij') for dummy in range(rng.randint(2, 9))) for dummy in range(300)]
    data = b' '.join(rng.choice(words) for dummy in range(RECORD // 4))
    return data[:RECORD]


def _rle_block(n, last):
    return ((n << 3) | (1 << 1) | last).to_bytes(3, 'little') + b'\0'


def _outcome(d, frame, length):
    try:
        return 'read', bytes(d.decompress(frame, length))
    except _zstd.BadFrame as e:
        return 'refused', str(e)


@pytest.fixture(params=['one call', 'streaming'])
def decompressor(request, monkeypatch):
    if request.param == 'streaming':  # as with a zstandard without allow_extra_data
        monkeypatch.setattr(_zstd, '_strict_one_shot', lambda dctx: False)
    d = _zstd.Decompressor()
    assert d._one_shot is (request.param == 'one call')
    return d


def test_the_pinned_zstandard_reads_in_one_call():
    assert _zstd.Decompressor()._one_shot


def test_both_ways_read_and_refuse_the_same(decompressor):
    data = _record()
    frame = _zstd.Compressor(3).compress(data)
    assert len(frame) < len(data) // 2
    cases = {
        'good': (frame, len(data)),
        'bytes after': (frame + b'xyz', len(data)),
        'an empty frame after': (frame + _zstd.Compressor(3).compress(b''), len(data)),
        'a skippable frame after': (frame + b'\x50\x2a\x4d\x18' + (4).to_bytes(4, 'little') + b'abcd', len(data)),
        'truncated': (frame[:-7], len(data)),
        # a single segment declaring 16 bytes, with a block of 100
        'declares less than it holds': (_zstd.FRAME_MAGIC + b'\x20\x10' + _rle_block(100, 1), 16),
    }
    got = dict((name, _outcome(decompressor, f, n)) for name, (f, n) in cases.items())
    assert got['good'] == ('read', data)
    assert got['bytes after'] == ('refused', '3 bytes follow the zstd frame in the payload')
    assert got['an empty frame after'][0] == 'refused' and 'follow the zstd frame' in got['an empty frame after'][1]
    assert got['a skippable frame after'] == ('refused', '12 bytes follow the zstd frame in the payload')
    assert got['truncated'][0] == 'refused'
    assert got['declares less than it holds'] == (
        'refused', 'decompresses to more than its length 16 (refused: decompression bomb)')


def test_both_ways_give_the_same_messages(monkeypatch):
    """The one call only says yes: every refusal comes from the streaming way, word for word."""
    data = _record()
    frame = _zstd.Compressor(3).compress(data)
    hs = _zstd.zstandard.frame_header_size(frame)
    reserved = frame[:hs] + bytes([frame[hs] | 0x06]) + frame[hs + 1:]  # the first block's type: reserved
    bad = [(frame + b'xyz', len(data)), (frame[:-7], len(data)), (reserved, len(data))]
    fast = [_outcome(_zstd.Decompressor(), f, n) for f, n in bad]
    monkeypatch.setattr(_zstd, '_strict_one_shot', lambda dctx: False)
    slow = [_outcome(_zstd.Decompressor(), f, n) for f, n in bad]
    assert fast == slow and all(kind == 'refused' for kind, dummy in fast)


_IMPORTS = '''
import sys
from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _seal
print(_seal.HAS_CRYPTOGRAPHY, any(m.startswith('cryptography') for m in sys.modules))
_seal.Seal(_seal.AES_GCM, bytes(32))
print(any(m.startswith('cryptography.hazmat') for m in sys.modules))
'''


def test_cryptography_is_loaded_by_the_first_seal_only():
    """A process that never seals or opens a record (format 1, compressed only, keyless checks) does not load
    cryptography (9 MiB of RSS); it is found at import, and loaded by the first Seal."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, '-c', _IMPORTS], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ['True', 'False', 'True']


@pytest.mark.parametrize('algorithm', [_seal.AES_GCM, _seal.CHACHA])
def test_sealing_in_place_equals_the_older_cryptography_way(algorithm):
    """encrypt_into/decrypt_into (cryptography 44+) and the ways older releases have (Cipher.update_into for
    AES-GCM, ChaCha20Poly1305.encrypt): the same bytes sealed, the same plaintext opened, the same refusals."""
    fast, slow = _seal.Seal(algorithm, bytes(range(32))), _seal.Seal(algorithm, bytes(range(32)))
    if fast._into is None:
        pytest.skip('this cryptography has no encrypt_into: only the older way exists here')
    slow._into = None
    for payload in (b'', b'x', _record()):
        aad = b'head %d' % len(payload)
        sealed = [bytes(s.encrypt(7, aad, memoryview(payload))) for s in (fast, slow)]
        assert sealed[0] == sealed[1] and len(sealed[0]) == len(payload) + _seal.TAG
        for opener in (fast, slow):
            out = bytearray(len(payload) + _seal.SEAL_SLACK)
            assert bytes(opener.decrypt_into(7, aad, memoryview(sealed[0]), out)) == payload
            for index, bad_aad, body in ((8, aad, sealed[0]), (7, aad + b'!', sealed[0]),
                                         (7, aad, sealed[0][:-1] + bytes([sealed[0][-1] ^ 1]))):
                with pytest.raises(_seal.BadTag):
                    opener.decrypt_into(index, bad_aad, memoryview(body), out)

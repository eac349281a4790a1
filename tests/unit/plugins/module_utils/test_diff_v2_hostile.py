"""Hostile version 2 files: each damage or forgery gets its exact error, and nothing is written to the
target. What a host without the key can and cannot catch (docs/format.md, "Version 2")."""

import json
import os
import re
import struct
import subprocess
import sys
import time

import pytest

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _format, _seal
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import FormatError, LvdiffError, WrongKeyError

from ansible_collections.lvdiff.thin.tests.support.diffs import (
    file_seal, lvdiff_bytes, lvdiff_records, make_diff, open_records)
from ansible_collections.lvdiff.thin.tests.support.volumes import CONTENTS, VolumePair, sha256_file

CS = 64 * 1024
TEST_KEY = bytes(range(32))
TAG_FAIL = ('corrupt or forged diff: record %d at file offset %d: %s record (volume offset %d, length %d) fails its '
            'authentication tag: it was changed, moved, or taken from another file')


@pytest.fixture(autouse=True)
def one_frame_per_record(monkeypatch):
    """These tests damage DATA records one by one: the writer gathers none into GROUP records here
    (test_diff_v2_group.py has those)."""
    monkeypatch.setattr(_format, 'GROUP_BYTES', 0)


@pytest.fixture
def pair(tmp_path):
    base = {c: ('b', c) for c in range(16)}
    src = dict(base)
    for c in (2, 4, 5, 8, 10, 12):
        src[c] = ('s', c)
    for c in (6, 14):
        del src[c]
    return VolumePair(tmp_path, CS, base, src, base_chunks=16, src_chunks=16, content=CONTENTS['mixed'])


@pytest.fixture
def key(tmp_path):
    path = str(tmp_path / 'test.key')
    with open(path, 'wb') as f:
        f.write(TEST_KEY)
    os.chmod(path, 0o600)
    return _seal.Key.from_file(path)


def good(pair, tmp_path, name='good.diff', **kw):
    path = str(tmp_path / name)
    make_diff(pair, path, level=3, **kw)
    return path


def save(tmp_path, name, data):
    path = str(tmp_path / name)
    with open(path, 'wb') as f:
        f.write(data)
    return path


def layout(data):
    """[(type letter, file offset, flags, volume offset, length, body)] of each record."""
    pos, out = 12, []
    for rtype, flags, reserved, offset, length, body in lvdiff_records(data):
        out.append((chr(rtype), pos, flags, offset, length, body))
        pos += 28 + len(body)
    return out


def nth(data, letter, n=0, where=lambda r: True):
    """(index, record) of the n-th record of this type that where() accepts."""
    found = [(i, r) for i, r in enumerate(layout(data)) if r[0] == letter and where(r)]
    return found[n]


def rebuild(data, fn, fix_trailer=True, seal=None):
    """data with its records changed by fn(records), CRCs recomputed (and the trailer, keeping its old tag
    unless seal re-seals every record)."""
    recs = open_records(data, seal) if seal is not None else lvdiff_records(data)
    fn(recs)
    return lvdiff_bytes(recs, preamble=data[:12], fix_trailer=fix_trailer, seal=seal)


def target_copy(pair, tmp_path):
    target = str(tmp_path / 'target.img')
    subprocess.run(['cp', '--sparse=always', pair.base, target], check=True)
    return target


def refused(pair, tmp_path, path, match, error=FormatError, key=None, both=False):
    """Apply path to a copy of the base with verify_first (and without, if both: the failure comes before
    any write): it raises error with exactly this message, and the copy is left as it was."""
    for verify_first in (True, False) if both else (True,):
        target = target_copy(pair, tmp_path)
        before = sha256_file(target)
        fd = os.open(target, os.O_RDWR)
        try:
            with pytest.raises(error) as info:
                _diffio.apply_file(path, fd, key=key, verify_first=verify_first)
        finally:
            os.close(fd)
        assert info.type is error and str(info.value) == match
        assert sha256_file(target) == before, 'the target was changed'
    return str(info.value)


def verify(path, key=None, decode=None):
    """verify's summary, or the error."""
    try:
        with _diffio.open_diff(path, key) as reader:
            return _diffio.verify(reader, decode=decode)
    except LvdiffError as e:
        return e


def crc_fail(index, start, letter, offset, length):
    return 'corrupt diff: record %d at file offset %d: %s record checksum mismatch (volume offset %d, length %d)' % (
        index, start, {'H': 'HEADER', 'C': 'CHECK', 'D': 'DATA', 'Z': 'DISCARD', 'T': 'TRAILER'}[letter],
        offset, length)


def flipped(data, at):
    return data[:at] + bytes([data[at] ^ 0x10]) + data[at + 1:]


# --- flipped bytes --------------------------------------------------------------------------------


def test_flipped_byte_in_a_compressed_payload(pair, tmp_path):
    data = open(good(pair, tmp_path, compress_level=3), 'rb').read()
    i, (t, start, flags, offset, length, body) = nth(data, 'D', where=lambda r: r[2] & _format.COMPRESSED)
    bad = save(tmp_path, 'crc.diff', flipped(data, start + 24 + len(body) // 2))
    refused(pair, tmp_path, bad, crc_fail(i, start, 'D', offset, length))

    # the CRC and the trailer made to match (no key needed: this file is not encrypted), the byte in the
    # frame's content size: zstd's frame header no longer says the record's length
    import zstandard
    at = zstandard.frame_header_size(body) - 1

    def flip_frame(recs):
        recs[i][5] = flipped(recs[i][5], at)
    bad = rebuild(data, flip_frame)
    declared = zstandard.frame_content_size(layout(bad)[i][5])
    bad = save(tmp_path, 'frame.diff', bad)
    refused(pair, tmp_path, bad, 'corrupt diff: record %d at file offset %d: compressed DATA record (volume offset '
            '%d, length %d): the zstd frame declares %d bytes of content, not its length %d'
            % (i, start, offset, length, declared, length))


def test_flipped_byte_in_an_encrypted_payload(pair, tmp_path, key):
    path = good(pair, tmp_path, compress_level=3, key=key)
    data = open(path, 'rb').read()
    i, (t, start, flags, offset, length, body) = nth(data, 'D')
    at = start + 24 + 5
    bad = save(tmp_path, 'crc.diff', flipped(data, at))
    refused(pair, tmp_path, bad, crc_fail(i, start, 'D', offset, length), key=key)
    assert str(verify(bad)) == crc_fail(i, start, 'D', offset, length)  # a keyless host catches accidents

    # CRC and the trailer's sha1 fixed (its tag left as it was: no key needed for that): a keyless host
    # cannot tell; the key's tag check can
    def flip_body(recs):
        recs[i][5] = flipped(recs[i][5], 5)
    forged = save(tmp_path, 'forged.diff', rebuild(data, flip_body))
    keyless = verify(forged)
    assert isinstance(keyless, dict) and keyless['decoded'] is False
    refused(pair, tmp_path, forged, TAG_FAIL % (i, start, 'DATA', offset, length), key=key)


def test_flipped_byte_in_the_header(pair, tmp_path, key):
    data = open(good(pair, tmp_path, key=key), 'rb').read()
    body = layout(data)[0][5]
    at = 12 + 24 + body.index(b'"snap"') + 2
    refused(pair, tmp_path, save(tmp_path, 'crc.diff', flipped(data, at)), crc_fail(0, 12, 'H', 0, 0), key=key,
            both=True)

    def rename(recs):
        recs[0][5] = recs[0][5].replace(b'"snap"', b'"snaq"')
    forged = save(tmp_path, 'forged.diff', rebuild(data, rename))
    assert isinstance(verify(forged), dict)  # keyless: the header reads, its tag is not checked
    refused(pair, tmp_path, forged, TAG_FAIL % (0, 12, 'HEADER', 0, 0), key=key, both=True)


def test_flipped_byte_in_the_key_id(pair, tmp_path, key):
    path = good(pair, tmp_path, key=key)
    data = open(path, 'rb').read()
    body = layout(data)[0][5]
    kid = json.loads(body[:-16])['encryption']['key_id']
    at = 12 + 24 + body.index(kid.encode()) + 3
    refused(pair, tmp_path, save(tmp_path, 'crc.diff', flipped(data, at)), crc_fail(0, 12, 'H', 0, 0), key=key,
            both=True)
    other = kid[:3] + ('0' if kid[3] != '0' else '1') + kid[4:]

    def change(recs):
        recs[0][5] = recs[0][5].replace(kid.encode(), other.encode())
    bad = save(tmp_path, 'kid.diff', rebuild(data, change))
    # checked before any tag: a key id that does not match is "wrong key", whoever changed what
    refused(pair, tmp_path, bad, 'wrong key: %s was encrypted with key id %s; the key given (%s) has id %s'
            % (bad, other, key.describe(), kid), error=WrongKeyError, key=key, both=True)


# --- records moved, dropped, duplicated, spliced ----------------------------------------------------


def test_records_reordered(pair, tmp_path, key):
    data = open(good(pair, tmp_path, key=key), 'rb').read()
    recs = layout(data)
    d1, d2 = [i for i, r in enumerate(recs) if r[0] == 'D'][:2]

    def swap(a, b):
        def fn(rs):
            rs[a], rs[b] = rs[b], rs[a]
        return fn
    # whole DATA records swapped: a keyless host sees the second one's range go backwards; with the key the
    # first one already fails its tag (its index is its nonce)
    bad = save(tmp_path, 'swap.diff', rebuild(data, swap(d1, d2)))
    msg = str(verify(bad))
    assert re.match(r'corrupt diff: record %d at file offset \d+: DATA range \d+\+\d+ overlaps' % d2, msg), msg
    moved = recs[d2]
    refused(pair, tmp_path, bad, TAG_FAIL % (d1, recs[d1][1], 'DATA', moved[3], moved[4]), key=key)
    # CHECK records, which have no order of their own: only the nonce (the record's index) catches the move
    c1, c2 = [i for i, r in enumerate(recs) if r[0] == 'C'][:2]
    bad = save(tmp_path, 'checks.diff', rebuild(data, swap(c1, c2)))
    assert isinstance(verify(bad), dict)
    r2 = recs[c2]
    refused(pair, tmp_path, bad, TAG_FAIL % (c1, recs[c1][1], 'CHECK', r2[3], r2[4]), key=key, both=True)

    # DATA bodies of two records of one length swapped under their heads: ranges in order, tags fail
    same = [i for i, r in enumerate(recs) if r[0] == 'D' and len(r[5]) == CS + 16]
    assert len(same) >= 2

    def swap_bodies(rs):
        rs[same[0]][5], rs[same[1]][5] = rs[same[1]][5], rs[same[0]][5]
    bad = save(tmp_path, 'bodies.diff', rebuild(data, swap_bodies))
    assert isinstance(verify(bad), dict)
    r = recs[same[0]]
    refused(pair, tmp_path, bad, TAG_FAIL % (same[0], r[1], 'DATA', r[3], r[4]), key=key)


def test_record_dropped(pair, tmp_path, key):
    data = open(good(pair, tmp_path, key=key), 'rb').read()
    recs = layout(data)
    i = [j for j, r in enumerate(recs) if r[0] == 'D'][1]
    # dropped, the trailer's counts and sha1 made to match (its tag left): keyless passes, the key does not
    bad = save(tmp_path, 'drop.diff', rebuild(data, lambda rs: rs.__delitem__(i)))
    assert isinstance(verify(bad), dict)
    nxt = recs[i + 1]
    refused(pair, tmp_path, bad, TAG_FAIL % (i, recs[i][1], {'D': 'DATA', 'Z': 'DISCARD'}[nxt[0]], nxt[3], nxt[4]),
            key=key)
    # dropped, the trailer left: anyone sees it
    bad = save(tmp_path, 'drop2.diff', rebuild(data, lambda rs: rs.__delitem__(i), fix_trailer=False))
    assert 'TRAILER does not match the records read' in str(verify(bad))


def test_record_duplicated(pair, tmp_path, key):
    data = open(good(pair, tmp_path, key=key), 'rb').read()
    recs = layout(data)
    c = [j for j, r in enumerate(recs) if r[0] == 'C'][0]
    bad = save(tmp_path, 'dup.diff', rebuild(data, lambda rs: rs.insert(c, list(rs[c]))))
    assert isinstance(verify(bad), dict)
    start = recs[c][1] + 28 + len(recs[c][5])
    refused(pair, tmp_path, bad, TAG_FAIL % (c + 1, start, 'CHECK', recs[c][3], recs[c][4]), key=key, both=True)


def test_record_from_another_file_with_the_same_key(pair, tmp_path, key):
    """File B made with the same key from the same volumes: same records, same heads, another file salt. A
    record of B put into A, A's trailer recomputed and re-sealed (only the spliced record's tag can tell)."""
    a = open(good(pair, tmp_path, 'a.diff', compress_level=3, key=key), 'rb').read()
    b = open(good(pair, tmp_path, 'b.diff', compress_level=3, key=key), 'rb').read()
    ra, rb = layout(a), layout(b)
    i = [j for j, r in enumerate(ra) if r[0] == 'D'][1]
    assert ra[i][:5] == rb[i][:5] and ra[i][5] != rb[i][5]  # same head, other ciphertext
    recs = lvdiff_records(a)
    recs[i] = lvdiff_records(b)[i]
    bad = save(tmp_path, 'spliced.diff', lvdiff_bytes(recs, preamble=a[:12], trailer_seal=file_seal(a, key)))
    assert isinstance(verify(bad), dict)
    refused(pair, tmp_path, bad, TAG_FAIL % (i, ra[i][1], 'DATA', ra[i][3], ra[i][4]), key=key)
    # the same file with A's own record back: the helpers change nothing else
    recs[i] = lvdiff_records(a)[i]
    assert lvdiff_bytes(recs, preamble=a[:12], trailer_seal=file_seal(a, key)) == a


def test_truncated_anywhere(pair, tmp_path, key):
    data = open(good(pair, tmp_path, compress_level=3, key=key), 'rb').read()
    cuts = sorted(set([0, 5, 12, 20, 36, len(data) - 1, len(data) - 17] + [r[1] for r in layout(data)]
                      + list(range(40, len(data), len(data) // 17))))
    for cut in cuts:
        path = save(tmp_path, 'cut', data[:cut])
        assert re.search(r'truncated|empty|not a diff file', str(verify(path))), cut  # keyless too
        msg = str(verify(path, key))
        assert re.search(r'truncated|empty|not a diff file', msg), (cut, msg)
        refused(pair, tmp_path, path, msg, error=type(verify(path, key)), key=key)


def test_truncated_at_a_record_boundary_with_a_trailer_to_match(pair, tmp_path, key):
    """The last records cut off and the trailer's counts and sha1 rewritten (its tag left): a keyless host
    cannot tell; the TRAILER's tag, for its index and its text, does."""
    data = open(good(pair, tmp_path, key=key), 'rb').read()
    recs = layout(data)
    keep = len(recs) - 3
    bad = save(tmp_path, 'short.diff', rebuild(data, lambda rs: rs.__delitem__(slice(keep, len(rs) - 1))))
    assert isinstance(verify(bad), dict)
    refused(pair, tmp_path, bad, TAG_FAIL % (keep, recs[keep][1], 'TRAILER', 0, 0), key=key)


# --- keys ------------------------------------------------------------------------------------------


def test_wrong_key_and_passphrase(pair, tmp_path, key):
    by_file = good(pair, tmp_path, 'file.diff', key=key)
    by_pass = good(pair, tmp_path, 'pass.diff', key=_seal.Key.from_passphrase('right'))
    kid_file = json.loads(layout(open(by_file, 'rb').read())[0][5][:-16])['encryption']['key_id']
    kid_pass = json.loads(layout(open(by_pass, 'rb').read())[0][5][:-16])['encryption']['key_id']
    other = _seal.Key(bytes(32), 'key file /other.key')
    refused(pair, tmp_path, by_file, 'wrong key: %s was encrypted with key id %s; the key given (key file '
            '/other.key) has id %s' % (by_file, kid_file, _seal.key_id(bytes(32))), WrongKeyError, other, both=True)
    msg = str(verify(by_pass, _seal.Key.from_passphrase('wrong')))
    assert re.match(r"wrong passphrase: %s was encrypted with key id %s; the passphrase given has id [0-9a-f]{32} "
                    r"\(with this file's salt\)\Z" % (re.escape(by_pass), kid_pass), msg), msg
    refused(pair, tmp_path, by_pass, msg, WrongKeyError, _seal.Key.from_passphrase('wrong'), both=True)
    refused(pair, tmp_path, by_pass, 'wrong key: %s was encrypted with a passphrase (key id %s), not a key file: '
            'give the passphrase' % (by_pass, kid_pass), WrongKeyError, key, both=True)
    refused(pair, tmp_path, by_file, 'wrong key: %s was encrypted with a key file (key id %s), not a passphrase: '
            'give its key_file' % (by_file, kid_file), WrongKeyError, _seal.Key.from_passphrase('x'), both=True)
    # the right ones work
    for path, k in ((by_file, key), (by_pass, _seal.Key.from_passphrase('right'))):
        assert verify(path, k)['decoded'] is True


def test_missing_key(pair, tmp_path, key):
    path = good(pair, tmp_path, key=key)
    kid = json.loads(layout(open(path, 'rb').read())[0][5][:-16])['encryption']['key_id']
    refused(pair, tmp_path, path, '%s is encrypted with key id %s: give encrypt_key_file or encrypt_passphrase'
            % (path, kid), LvdiffError, both=True)
    with _diffio.open_diff(path) as reader:  # a header-only look needs no key
        assert reader.header.encryption['key_id'] == kid and reader.encrypted


@pytest.mark.parametrize('kw', [{}, {'compress_level': 3}])
def test_a_key_for_an_unencrypted_file_is_refused(pair, tmp_path, key, kw):
    """Anyone can write an unencrypted file: with a key, only an encrypted one proves who wrote it."""
    path = good(pair, tmp_path, **kw)
    refused(pair, tmp_path, path, '%s is not encrypted, but a key was given (%s): refused, since anyone can write '
            'an unencrypted file in place of an encrypted one; read it without a key if you trust where it comes '
            'from' % (path, key.describe()), LvdiffError, key, both=True)


@pytest.mark.parametrize('kw', [{}, {'compress_level': 3}])
def test_a_report_reads_an_unencrypted_file_without_the_key_when_not_strict(pair, tmp_path, key, kw):
    """lvdiff_info and repository_info, given a key, read a plain file as it is (strict=False)."""
    path = good(pair, tmp_path, **kw)
    with _diffio.open_diff(path, key, strict=False) as reader:
        assert reader.key is None and not reader.encrypted
        assert _diffio.verify(reader)['decoded'] is True
    with _diffio.open_diff(path, key) as reader:
        assert reader.key is key


# --- zstd frames that lie -----------------------------------------------------------------------------


def _frame(blocks, content_size=None, single=False):
    """A zstd frame (RFC 8878) made by hand: content size in 8 bytes, or none; a 128 KiB window."""
    if content_size is None:
        return b'\x28\xb5\x2f\xfd\x00\x38' + blocks
    return b'\x28\xb5\x2f\xfd\xc0\x38' + struct.pack('<Q', content_size) + blocks


def _rle(n, last):
    return ((n << 3) | 2 | last).to_bytes(3, 'little') + b'\0'


def _raw(data, last):
    return ((len(data) << 3) | last).to_bytes(3, 'little') + data


def _bomb(total):
    blocks = total // (128 << 10)
    return b''.join(_rle(128 << 10, i == blocks - 1) for i in range(blocks))


def with_frame(pair, tmp_path, frame, sealed_key=None, pick=lambda r: r[4] == CS):
    """A compressed file (encrypted too with sealed_key) whose first DATA record of one chunk holds frame: CRCs,
    trailer (and tags) made to match, so that only the frame is wrong. (its index, record)."""
    data = open(good(pair, tmp_path, 'base.diff', compress_level=3, key=sealed_key), 'rb').read()
    i, rec = nth(data, 'D', where=pick)
    seal = file_seal(data, sealed_key) if sealed_key else None

    def put(recs):
        recs[i][1] |= _format.COMPRESSED
        recs[i][5] = frame
    return save(tmp_path, 'frame.diff', rebuild(data, put, seal=seal)), i, rec


def frame_msg(i, rec, what):
    return 'corrupt diff: record %d at file offset %d: compressed DATA record (volume offset %d, length %d): %s' % (
        i, rec[1], rec[3], rec[4], what)


@pytest.mark.parametrize('encrypted', [False, True])
def test_decompression_bomb(pair, tmp_path, key, encrypted):
    """1 GiB of zeros in a 32 KiB frame that declares the record's 64 KiB: refused at once, in bounded memory
    (measured in a process of its own), encrypted or not (then the tag is right and the frame is not)."""
    path, i, rec = with_frame(pair, tmp_path, _frame(_bomb(1 << 30), CS), key if encrypted else None)
    assert os.path.getsize(path) < 200 * 1024
    msg = frame_msg(i, rec, 'decompresses to more than its length %d (refused: decompression bomb)' % CS)
    t0 = time.monotonic()
    refused(pair, tmp_path, path, msg, key=key if encrypted else None, both=True)
    assert time.monotonic() - t0 < 2
    code = ('import resource, sys\n'
            'from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _seal\n'
            'key = _seal.Key(bytes(range(32)), "k") if sys.argv[2] == "1" else None\n'
            'with _diffio.open_diff(sys.argv[1], key) as reader:\n'
            '    try:\n'
            '        _diffio.verify(reader)\n'
            '    except Exception as e:\n'
            '        print(type(e).__name__)\n'
            'print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, '-c', code, path, '1' if encrypted else '0'], capture_output=True,
                         text=True, env=env, check=True).stdout.split()
    assert out[0] == 'FormatError'
    assert int(out[1]) < 150 * 1024, 'peak RSS %d KiB' % int(out[1])  # a 1 GiB output would show here


def test_bomb_larger_than_the_record_is_refused_by_size_first(pair, tmp_path):
    """A 64 KiB record cannot hold 8 GiB of RLE blocks (256 KiB): a compressed payload is shorter than its
    length, which the reader checks before zstd sees the frame."""
    frame = _frame(_bomb(8 << 30), CS)
    path, i, rec = with_frame(pair, tmp_path, frame)
    refused(pair, tmp_path, path, 'corrupt diff: record %d at file offset %d: compressed DATA record of length %d '
            'with a %d-byte payload: a payload is shorter than its length, and a length at most %d'
            % (i, rec[1], CS, len(frame), 16 << 20))


@pytest.mark.parametrize('frame,what', [
    (_frame(_rle(100, 1), CS), 'decompresses to 100 bytes, not its length %d' % CS),
    (_frame(_raw(b'x' * 1000, 1), CS), 'decompresses to 1000 bytes, not its length %d' % CS),
    (_frame(_rle(CS, 1)), 'the zstd frame does not declare its content size'),
    (_frame(_rle(CS, 1), CS + 1), 'the zstd frame declares %d bytes of content, not its length %d' % (CS + 1, CS)),
    (_frame(_rle(CS, 1), CS) + b'xyz', '3 bytes follow the zstd frame in the payload'),
    (_frame(_rle(CS, 1), CS) + _frame(_rle(1, 1), 1), '18 bytes follow the zstd frame in the payload'),
    (_frame(_rle(CS // 2, 0), CS), 'the zstd frame is truncated: it ends before its last block'),
    (b'\x50\x2a\x4d\x18' + b'\0' * 8, "the payload is not a zstd frame (it starts with b'P*M\\x18')"),
    (b'\x28\xb5\x2f\xfd\xff', 'unreadable zstd frame header: '),
])
def test_frames_that_lie(pair, tmp_path, frame, what):
    path, i, rec = with_frame(pair, tmp_path, frame)
    msg = str(verify(path))
    assert msg.startswith(frame_msg(i, rec, what)), msg
    refused(pair, tmp_path, path, msg)


def test_a_good_hand_made_frame_is_read(pair, tmp_path):
    """The frame checks are no stricter than zstd: a frame of RLE and raw blocks, any writer's, is read."""
    half = CS // 2
    path, i, rec = with_frame(pair, tmp_path, _frame(_rle(half, 0) + _raw(b'x' * (half - 16), 0) + _rle(16, 1), CS))
    with _diffio.open_diff(path) as reader:
        events = [(o, bytes(p)) for k, o, n, p in reader.events() if k == 'data' and o == rec[3]]
    assert events == [(rec[3], b'\0' * half + b'x' * (half - 16) + b'\0' * 16)]


# --- flags and header fields ------------------------------------------------------------------------------


def test_flags_on_a_version_1_file(pair, tmp_path):
    data = open(good(pair, tmp_path), 'rb').read()
    i, rec = nth(data, 'D')

    def flag(recs):
        recs[i][1] = _format.COMPRESSED
    refused(pair, tmp_path, save(tmp_path, 'f.diff', rebuild(data, flag)),
            'corrupt diff: record %d at file offset %d: DATA record with flags 0x01 in a version 1 file (which has '
            'none)' % (i, rec[1]))


@pytest.mark.parametrize('letter,flags,match', [
    ('Z', 0, 'DISCARD record is not sealed in a file whose header says it is encrypted'),
    ('C', _format.SEALED | _format.COMPRESSED, 'CHECK record with unknown flags 0x03'),
    ('D', _format.SEALED | 0x80, 'DATA record with unknown flags 0x82'),
])
def test_flags_in_an_encrypted_file(pair, tmp_path, key, letter, flags, match):
    data = open(good(pair, tmp_path, key=key), 'rb').read()
    i, rec = nth(data, letter)

    def flag(recs):
        recs[i][1] = flags
        if not flags & _format.SEALED:
            recs[i][5] = recs[i][5][:-16]
    path = save(tmp_path, 'f.diff', rebuild(data, flag))
    msg = 'corrupt diff: record %d at file offset %d: %s' % (i, rec[1], match)
    assert str(verify(path)) == msg  # keyless: framing
    refused(pair, tmp_path, path, msg, key=key)


def test_compressed_flag_in_a_file_without_compression(pair, tmp_path, key):
    data = open(good(pair, tmp_path, key=key), 'rb').read()
    seal = file_seal(data, key)
    i, rec = nth(data, 'D')

    def flag(recs):
        recs[i][1] |= _format.COMPRESSED
    path = save(tmp_path, 'f.diff', rebuild(data, flag, seal=seal))
    refused(pair, tmp_path, path, 'corrupt diff: record %d at file offset %d: compressed DATA record in a file whose '
            'header names no compression' % (i, rec[1]), key=key)


def with_header(data, **changes):
    """data with header fields replaced (dotted keys reach into objects), CRCs and trailer recomputed; a sealed
    header keeps its old tag (these are refused before any tag)."""
    recs = lvdiff_records(data)
    sealed = recs[0][1] & _format.SEALED
    text, tag = (recs[0][5][:-16], recs[0][5][-16:]) if sealed else (recs[0][5], b'')
    d = json.loads(text)
    for key, value in changes.items():
        parts = key.split('.')
        where = d
        for p in parts[:-1]:
            where = where[p]
        if value is KeyError:
            del where[parts[-1]]
        else:
            where[parts[-1]] = value
    recs[0][5] = json.dumps(d).encode() + tag
    return lvdiff_bytes(recs, preamble=data[:12])


def test_compression_keys_in_a_version_1_header(pair, tmp_path):
    data = open(good(pair, tmp_path), 'rb').read()
    for field, value in (('compression', {'algorithm': 'zstd', 'level': 3}), ('encryption', None)):
        path = save(tmp_path, 'h.diff', with_header(data, **{field: value}))
        msg = "diff header: a version 1 file carries %r, which only version 2 files have" % field
        refused(pair, tmp_path, path, msg, both=True)


def test_scrypt_parameters_asking_for_1_gib(pair, tmp_path):
    data = open(good(pair, tmp_path, key=_seal.Key.from_passphrase('pw')), 'rb').read()
    path = save(tmp_path, 'h.diff', with_header(data, **{'encryption.kdf.n': 1 << 20}))
    t0 = time.monotonic()
    refused(pair, tmp_path, path, 'diff header: encryption.kdf refused: n=1048576, r=8, p=1 ask for 1024 MiB '
            '(128*n*r*p bytes); a reader allows at most 64 MiB', key=_seal.Key.from_passphrase('pw'), both=True)
    assert time.monotonic() - t0 < 1  # refused before any key derivation


@pytest.mark.parametrize('changes,match', [
    ({'encryption.key_id': 'AB' * 16}, r"encryption\.key_id 'ABAB.*' is not 32 lowercase hex digits"),
    ({'encryption.key_id': 'ab' * 15}, r'encryption\.key_id .* is not 32 lowercase hex digits'),
    ({'encryption.file_salt': 7}, r'encryption\.file_salt is an integer, not a string'),
    ({'encryption.algorithm': 'rot13'}, r"unknown encryption algorithm 'rot13' \(this reader knows aes-256-gcm, "
                                        r"chacha20-poly1305\)"),
    ({'encryption.nonce_prefix': 'x'}, r'encryption has the keys algorithm, file_salt, kdf, key_id, nonce_prefix, '
                                       r'not algorithm, key_id, file_salt, kdf'),
    ({'encryption.kdf': KeyError}, r'encryption has the keys algorithm, file_salt, key_id, not'),
    ({'encryption.kdf.n': 3 << 14}, r'encryption\.kdf refused: n 49152 is not a power of two of at least 16384'),
    ({'encryption.kdf.n': 1 << 13}, r'encryption\.kdf refused: n 8192 is not a power of two'),
    ({'encryption.kdf.r': 0}, r'encryption\.kdf\.r 0 is out of its range'),
    ({'encryption.kdf.p': 64}, r'n=32768, r=8, p=64 ask for 2048 MiB'),
    ({'encryption.kdf.algorithm': 'argon2id'}, r"unknown key derivation 'argon2id'"),
    ({'encryption': 'aes'}, r'encryption is a string, not an object or null'),
    ({'encryption': None}, r'a version 2 file with neither compression nor encryption'),
    ({'encryption': KeyError}, r"a version 2 file must say 'encryption'"),
    ({'compression': {'algorithm': 'zstd', 'level': 0}}, r'compression\.level 0 is out of its range 1 to 19'),
    ({'compression': {'algorithm': 'lz4', 'level': 1}}, r"unknown compression algorithm 'lz4'"),
    ({'compression': {'algorithm': 'zstd'}}, r'compression has the keys algorithm, not algorithm, level'),
])
def test_every_v2_header_field_is_checked(pair, tmp_path, changes, match):
    data = open(good(pair, tmp_path, key=_seal.Key.from_passphrase('pw')), 'rb').read()
    path = save(tmp_path, 'h.diff', with_header(data, **changes))
    with pytest.raises(FormatError, match=match):
        with _diffio.open_diff(path):
            pass
    target = target_copy(pair, tmp_path)
    before = sha256_file(target)
    fd = os.open(target, os.O_RDWR)
    with pytest.raises(FormatError, match=match):
        _diffio.apply_file(path, fd, key=_seal.Key.from_passphrase('pw'), verify_first=False)
    os.close(fd)
    assert sha256_file(target) == before

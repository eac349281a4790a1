"""Hostile input: every corruption gets a precise error, and the target is not touched."""

import os
import re
import subprocess
import zlib

import pytest

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _format
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import (
    BaseMismatchError, FormatError, LvdiffError)

from test_diff_roundtrip import CS, make_diff
from volumes import VolumePair, chunk_pattern, sha256_file


@pytest.fixture
def pair(tmp_path):
    base = {c: ('b', c) for c in range(48)}
    src = dict(base)
    for c in (2, 3, 9, 17, 18, 19, 30):
        src[c] = ('s', c)
    for c in (5, 6):
        del src[c]
    return VolumePair(tmp_path, CS, base, src, base_chunks=48, src_chunks=48)


@pytest.fixture
def diff(pair, tmp_path):
    path = str(tmp_path / 'good.diff')
    make_diff(pair, path, level=3)
    return path


def target_copy(pair, tmp_path):
    target = str(tmp_path / 'target.img')
    subprocess.run(['cp', '--sparse=always', pair.base, target], check=True)
    return target


def refused(pair, tmp_path, path, error=FormatError, match=None, **kw):
    """Apply path to a copy of the base: it must raise, and leave the copy as it was."""
    target = target_copy(pair, tmp_path)
    before = sha256_file(target)
    fd = os.open(target, os.O_RDWR)
    try:
        with pytest.raises(error, match=match) as info:
            _diffio.apply_file(path, fd, **kw)
    finally:
        os.close(fd)
    assert sha256_file(target) == before, 'the target was changed'
    assert os.path.getsize(target) == pair.base_size
    return str(info.value)


def records(path):
    """(type, file offset, head+body+crc length) of each record of a good lvdiff file."""
    data = open(path, 'rb').read()
    pos = 12
    out = []
    while pos < len(data):
        rtype, dummy, dummy, body_len, dummy, dummy = _format._HEAD.unpack_from(data, pos)
        size = _format._HEAD.size + body_len + 4
        out.append((chr(rtype), pos, size))
        pos += size
    return out


def mutated(path, tmp_path, name, fn):
    data = bytearray(open(path, 'rb').read())
    fn(data)
    out = str(tmp_path / name)
    with open(out, 'wb') as f:
        f.write(data)
    return out


def flip(at):
    def fn(data):
        data[at] ^= 0x20
    return fn


def test_good_diff_applies(pair, tmp_path, diff):
    target = target_copy(pair, tmp_path)
    fd = os.open(target, os.O_RDWR)
    _diffio.apply_file(diff, fd, target_chunk_size=CS)
    os.close(fd)
    assert sha256_file(target) == sha256_file(pair.src)
    assert [r[0] for r in records(diff)][:2] == ['H', 'C']


@pytest.mark.parametrize('where', ['header', 'check', 'data-head', 'data-payload', 'discard', 'trailer', 'crc'])
def test_flipped_byte_is_found_and_located(pair, tmp_path, diff, where):
    recs = records(diff)
    kind = {'header': 'H', 'check': 'C', 'data-head': 'D', 'data-payload': 'D', 'discard': 'Z',
            'trailer': 'T', 'crc': 'D'}[where]
    index, (t, start, size) = next((i, r) for i, r in enumerate(recs) if r[0] == kind)
    at = {'data-head': start + 9, 'data-payload': start + 24 + 1000, 'crc': start + size - 2,
          'header': start + 24 + 5, 'check': start + 24 + 3, 'discard': start + 12,
          'trailer': start + 24 + 3}[where]
    bad = mutated(diff, tmp_path, 'bad.diff', flip(at))
    msg = refused(pair, tmp_path, bad)
    assert 'record %d at file offset %d' % (index, start) in msg
    assert 'checksum mismatch' in msg


def test_flip_in_record_type_is_reported(pair, tmp_path, diff):
    start = records(diff)[2][1]
    msg = refused(pair, tmp_path, mutated(diff, tmp_path, 'bad', flip(start)))
    assert re.search(r'record 2 at file offset %d: unknown record type' % start, msg)


def test_truncation_anywhere_is_found(pair, tmp_path, diff):
    data = open(diff, 'rb').read()
    cuts = sorted(set([0, 1, 7, 8, 11, 12, 20, 36] + [r[1] for r in records(diff)] +
                      [r[1] + 10 for r in records(diff)] + [len(data) - 1, len(data) - 5]
                      + list(range(100, len(data), len(data) // 23))))
    for cut in cuts:
        path = str(tmp_path / ('cut%d' % cut))
        with open(path, 'wb') as f:
            f.write(data[:cut])
        msg = refused(pair, tmp_path, path)
        assert re.search(r'truncated|empty|magic', msg), (cut, msg)
        os.unlink(path)


def test_dropped_record_is_found(pair, tmp_path, diff):
    recs = records(diff)
    t, start, size = [r for r in recs if r[0] == 'D'][1]
    msg = refused(pair, tmp_path, mutated(diff, tmp_path, 'drop', lambda d: d.__delitem__(slice(start, start + size))))
    assert 'TRAILER does not match' in msg


def test_appended_garbage_is_found(pair, tmp_path, diff):
    msg = refused(pair, tmp_path, mutated(diff, tmp_path, 'tail', lambda d: d.extend(b'x')))
    assert 'data after the TRAILER' in msg


def test_wrong_magic(pair, tmp_path, diff):
    msg = refused(pair, tmp_path, mutated(diff, tmp_path, 'magic', lambda d: d.__setitem__(slice(0, 4), b'GIF8')))
    assert 'not a diff file' in msg


def test_future_format_version(pair, tmp_path, diff):
    msg = refused(pair, tmp_path, mutated(diff, tmp_path, 'v2', lambda d: d.__setitem__(slice(8, 12), b'\x02\0\0\0')))
    assert 'format version 2 is not supported' in msg and 'upgrade' in msg


def test_chunk_size_mismatch(pair, tmp_path, diff):
    msg = refused(pair, tmp_path, diff, error=LvdiffError, match='chunk size mismatch', target_chunk_size=4 * CS)
    assert '4 KiB chunks' in msg and '16 KiB chunks' in msg


def _changed_base(pair, tmp_path, chunk):
    """A target whose base differs from the real base in one chunk."""
    target = target_copy(pair, tmp_path)
    with open(target, 'r+b') as f:
        f.seek(chunk * CS)
        f.write(chunk_pattern(('other', chunk), CS))
    return target


@pytest.mark.parametrize('level,chunk,found', [
    (0, 2, False),   # level 0 checks nothing
    (1, 2, True),    # the first touched chunk
    (1, 9, False),   # level 1 sees only the first one
    (2, 19, True),   # fewer than 64 touched chunks: level 2 samples all of them
    (3, 30, True),   # every touched chunk
    (3, 40, False),  # an untouched chunk is not the diff's business
])
def test_wrong_base_per_level(pair, tmp_path, level, chunk, found):
    path = str(tmp_path / ('l%d.diff' % level))
    make_diff(pair, path, level=level)
    target = _changed_base(pair, tmp_path, chunk)
    before = sha256_file(target)
    fd = os.open(target, os.O_RDWR)
    try:
        if found:
            with pytest.raises(BaseMismatchError, match='base check failed at byte %d ' % (chunk * CS)):
                _diffio.apply_file(path, fd, verify_first=False)
            assert sha256_file(target) == before
        else:
            _diffio.apply_file(path, fd, verify_first=False)
    finally:
        os.close(fd)


def test_base_check_can_be_skipped(pair, tmp_path):
    path = str(tmp_path / 'l3.diff')
    make_diff(pair, path, level=3)
    target = _changed_base(pair, tmp_path, 2)  # chunk 2 is overwritten by the diff anyway
    fd = os.open(target, os.O_RDWR)
    _diffio.apply_file(path, fd, base_check=False)
    os.close(fd)
    assert sha256_file(target) == sha256_file(pair.src)


def test_bad_header_json_is_refused(pair, tmp_path, diff):
    """A header that is valid JSON with a valid CRC but misses a field."""
    data = open(diff, 'rb').read()
    t, start, size = records(diff)[0]
    body = b'{"volume":{"name":"x","uuid":"u","size":512},"pairs":{}}'
    head = _format._HEAD.pack(_format.HEADER, 0, 0, len(body), 0, 0)
    rec = head + body + _format._CRC.pack(zlib.crc32(body, zlib.crc32(head)))
    bad = str(tmp_path / 'hdr')
    with open(bad, 'wb') as f:
        f.write(data[:start] + rec + data[start + size:])
    assert 'chunk_size missing' in refused(pair, tmp_path, bad)


# --- HyperLayer files as the Go lvdiff writes them ---------------------------------------------

def go_hyperlayer(pair, pairs_text, hexcase='upper', crc_case='lower', level=2, truncate=None):
    """Bytes of a HYPERLAYER/1.0 file laid out exactly as the Go lvdiff writes it."""
    changed = sorted(c for c in set(pair.base_map) | set(pair.src_map)
                     if pair.base_map.get(c) != pair.src_map.get(c))
    fmt = '%X' if hexcase == 'upper' else '%x'
    crcfmt = '%x' if crc_case == 'lower' else '%X'
    spc = CS // 512
    lines = ['HYPERLAYER/1.0', 'Name: snap', 'Volume size: %d' % pair.src_size, 'Chunk size: %d' % CS,
             'Delta blocks: %d' % len(changed), 'VolumeUUID: SRC-UUID', 'Detect level: %d' % level,
             'Backing volumeUUID: BASE-UUID'] + pairs_text
    out = ('\n'.join(lines) + '\n\n').encode()
    base = open(pair.base, 'rb').read()
    src = open(pair.src, 'rb').read()
    first = changed[0]
    crc = zlib.crc32(base[first * CS:(first + 1) * CS])
    out += ('D %s %s CRC32 %s\n\n' % (fmt % (first * spc), fmt % spc, crcfmt % crc)).encode()
    for c in changed:
        out += ('W %s %s\n' % (fmt % (c * spc), fmt % spc)).encode() + src[c * CS:(c + 1) * CS] + b'\n'
    return out[:truncate] if truncate else out


@pytest.mark.parametrize('hexcase,crc_case', [('upper', 'lower'), ('lower', 'upper')])
def test_go_hyperlayer_applies(pair, tmp_path, hexcase, crc_case):
    pairs = ['Author: BigVan (alpc_metic@live.com)', 'Flag: yes', 'Nothing: null', 'Quoted: "a: b"',
             "Single: 'it''s'", 'Braces: {x}', 'Empty:']
    path = str(tmp_path / 'go.hl')
    with open(path, 'wb') as f:
        f.write(go_hyperlayer(pair, pairs, hexcase, crc_case))
    target = target_copy(pair, tmp_path)
    fd = os.open(target, os.O_RDWR)
    result = _diffio.apply_file(path, fd, target_chunk_size=CS)
    os.close(fd)
    assert sha256_file(target) == sha256_file(pair.src)
    assert result['header']['pairs'] == {'Author': 'BigVan (alpc_metic@live.com)', 'Flag': 'yes',
                                         'Nothing': 'null', 'Quoted': 'a: b', 'Single': "it's",
                                         'Braces': '{x}', 'Empty': ''}
    assert result['header']['base']['uuid'] == 'BASE-UUID'
    assert result['records'] == {'check': 1, 'data': 9, 'discard': 0}


def test_go_hyperlayer_zero_chunks_become_holes(pair, tmp_path):
    path = str(tmp_path / 'go.hl')
    with open(path, 'wb') as f:
        f.write(go_hyperlayer(pair, []))
    target = target_copy(pair, tmp_path)
    fd = os.open(target, os.O_RDWR)
    _diffio.apply_file(path, fd)
    os.close(fd)
    assert os.stat(target).st_blocks * 512 == 46 * CS  # chunks 5 and 6 came as zeros, became holes


def test_go_hyperlayer_truncated(pair, tmp_path):
    full = go_hyperlayer(pair, [])
    for cut in (len(full) - 1, len(full) - CS - 20, len(full) - CS - 1, 300):
        path = str(tmp_path / ('t%d' % cut))
        with open(path, 'wb') as f:
            f.write(full[:cut])
        msg = refused(pair, tmp_path, path)
        assert 'truncated' in msg or 'corrupt' in msg, msg


def test_go_hyperlayer_wrong_base(pair, tmp_path):
    path = str(tmp_path / 'go.hl')
    with open(path, 'wb') as f:
        f.write(go_hyperlayer(pair, []))
    target = _changed_base(pair, tmp_path, 2)
    before = sha256_file(target)
    fd = os.open(target, os.O_RDWR)
    with pytest.raises(BaseMismatchError):
        _diffio.apply_file(path, fd, verify_first=False)
    os.close(fd)
    assert sha256_file(target) == before


def test_go_hyperlayer_bad_lines(pair, tmp_path):
    good = go_hyperlayer(pair, [])
    for old, new, match in [(b'Chunk size: %d' % CS, b'Chunk size: lots', 'not a number'),
                            (b'CRC32 ', b'MD5   ', 'bad D line'),
                            (b'VolumeUUID: SRC-UUID\n', b'', "no 'VolumeUUID' line")]:
        path = str(tmp_path / 'bad.hl')
        with open(path, 'wb') as f:
            f.write(good.replace(old, new, 1))
        assert re.search(match, refused(pair, tmp_path, path))


def test_hyperlayer_writer_refuses_unwritable_keys(pair, tmp_path):
    with pytest.raises(LvdiffError, match='cannot be written in a HyperLayer header'):
        make_diff(pair, str(tmp_path / 'x'), fmt='hyperlayer', pairs={'a:b': 'c'})
    with pytest.raises(LvdiffError, match='cannot hold a full image'):
        make_diff(pair, str(tmp_path / 'y'), fmt='hyperlayer', full=True)

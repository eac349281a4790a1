"""Hostile input: every corruption gets a precise error, and the target is not touched."""

import hashlib
import io
import json
import os
import re
import subprocess
import threading
import time
import zlib

import pytest

from ansible_collections.lvdiff.thin.plugins.module_utils import _codec, _diffio, _format
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import (
    BaseMismatchError, FormatError, LvdiffError)

from ansible_collections.lvdiff.thin.tests.support.diffs import go_hyperlayer, lvdiff_bytes, lvdiff_records, make_diff
from ansible_collections.lvdiff.thin.tests.support.volumes import CS, VolumePair, chunk_pattern, sha256_file


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
    msg = refused(pair, tmp_path, mutated(diff, tmp_path, 'v3', lambda d: d.__setitem__(slice(8, 12), b'\x03\0\0\0')))
    assert 'format version 3 is not supported' in msg and 'reads versions 1 and 2' in msg and 'upgrade' in msg
    msg = refused(pair, tmp_path, mutated(diff, tmp_path, 'v2', lambda d: d.__setitem__(slice(8, 12), b'\x02\0\0\0')))
    assert "a version 2 file must say 'compression'" in msg


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


# --- issue 9: what verify passes, apply must not refuse; every malformed header gets a FormatError ---

def verify_bytes(data):
    """Verify a diff from memory, as lvdiff_info verify: true does; the error or None."""
    try:
        _diffio.verify(_diffio.open_reader(io.BytesIO(data)))
    except LvdiffError as e:
        return e
    return None


def write(tmp_path, name, data):
    path = str(tmp_path / name)
    with open(path, 'wb') as f:
        f.write(data)
    return path


def with_header(diff, **changes):
    """The diff at path diff with header fields replaced (dotted keys reach into volume/base),
    every CRC and the trailer recomputed: only the header is wrong."""
    recs = lvdiff_records(open(diff, 'rb').read())
    d = json.loads(recs[0][5])
    for key, value in changes.items():
        where, dot, leaf = key.rpartition('.')
        (d[where] if dot else d)[leaf] = value
    recs[0][5] = json.dumps(d).encode()
    return lvdiff_bytes(recs)


def test_record_helpers_rebuild_the_file(diff):
    data = open(diff, 'rb').read()
    assert lvdiff_bytes(lvdiff_records(data)) == data


@pytest.mark.parametrize('changes,match', [
    ({'pairs.deep': json.loads('[' * 50 + ']' * 50)}, 'pair'),
    ({'base.size': 'x'}, r'base\.size is a string, not an integer or null'),
    ({'check_digest': []}, 'check_digest is an array, not a string'),
    ({'volume.size': -4096}, r'volume\.size -4096 is out of its range'),
    ({'volume.size': 2 ** 63}, r'volume\.size \d+ is out of its range'),
    ({'volume.size': 4097}, 'not a multiple of 512'),
    ({'volume.size': True}, 'volume.size is true or false'),
    ({'volume.size': 4096.0}, 'volume.size is a fractional number'),
    ({'volume': []}, 'volume is an array'),
    ({'volume.name': None}, 'volume.name missing'),
    ({'volume.thin_id': '7'}, 'volume.thin_id is a string'),
    ({'base': 'x'}, 'base is a string, not an object or null'),
    ({'base.uuid': 5}, 'base.uuid is an integer'),
    ({'chunk_size': 2 ** 31}, 'chunk_size 2147483648 is out of its range'),
    ({'chunk_size': 1000}, 'not a positive multiple of 512'),
    ({'checksum_level': 4}, 'checksum_level 4 is out of'),
    ({'sample_seed': -1}, 'sample_seed -1 is out of'),
    ({'check_digest': 'md5'}, 'unknown check digest'),
    ({'pool_transaction': 'x'}, 'pool_transaction is a string'),
    ({'tool': 1}, 'tool is an integer'),
    ({'created': {}}, 'created is an object'),
    ({'pairs': {'k': 1}}, "pair 'k' is not text to text"),
    ({'pairs': dict(('k%d' % i, '') for i in range(4097))}, '4097 pairs, more than the 4096'),
])
def test_every_header_field_is_checked(pair, tmp_path, diff, changes, match):
    """Finding 6: types and ranges of every header field; a clear FormatError at header time."""
    path = write(tmp_path, 'hdr.diff', with_header(diff, **changes))
    with pytest.raises(FormatError, match=match):
        with _diffio.open_diff(path) as reader:  # a header-only open (lvpatch's first look) refuses it
            reader.header
    refused(pair, tmp_path, path)


def test_deeply_nested_header_is_a_format_error(tmp_path, diff):
    """Finding 6: 100,000 levels of JSON nesting raised RecursionError."""
    recs = lvdiff_records(open(diff, 'rb').read())
    recs[0][5] = recs[0][5][:-1] + b',"x":' + b'[' * 100000 + b']' * 100000 + b'}'
    with pytest.raises(FormatError, match='nested too deeply'):
        with _diffio.open_diff(write(tmp_path, 'deep.diff', lvdiff_bytes(recs))):
            pass


def test_duplicate_json_keys_are_refused(tmp_path, diff):
    recs = lvdiff_records(open(diff, 'rb').read())
    recs[0][5] = recs[0][5][:-1] + b',"chunk_size":512}'
    with pytest.raises(FormatError, match='a key twice'):
        with _diffio.open_diff(write(tmp_path, 'dup.diff', lvdiff_bytes(recs))):
            pass


def test_full_image_of_2_63_bytes_is_refused_at_header_time(pair, tmp_path):
    """Finding 5: ftruncate overflowed after the data was written."""
    full = str(tmp_path / 'full.diff')
    make_diff(pair, full, full=True)
    data = with_header(full, **{'volume.size': 2 ** 63})
    assert verify_bytes(data) is not None
    target = write(tmp_path, 'empty.img', b'')
    fd = os.open(target, os.O_RDWR)
    try:
        with pytest.raises(FormatError, match='out of its range'):
            _diffio.apply_file(write(tmp_path, 'big.diff', data), fd, verify_first=False)
    finally:
        os.close(fd)
    assert os.path.getsize(target) == 0


def test_oversized_records_are_refused(pair, tmp_path, diff):
    """Finding 7 for lvdiff: a HEADER body over MAX_HEADER, a TRAILER or CHECK body over its size."""
    recs = lvdiff_records(open(diff, 'rb').read())
    big = list(recs)
    big[0] = big[0][:5] + [recs[0][5][:-1] + b',"x":"' + b'a' * (1 << 20) + b'"}']
    assert 'HEADER body length' in str(verify_bytes(lvdiff_bytes(big)))
    check = next(i for i, r in enumerate(recs) if r[0] == _format.CHECK)
    big = list(recs)
    big[check] = big[check][:5] + [b'x' * 65]
    assert 'CHECK body length 65' in str(verify_bytes(lvdiff_bytes(big)))


def test_writer_refuses_a_header_readers_refuse(pair, tmp_path):
    with pytest.raises(LvdiffError, match='more than the 1048576 a reader accepts'):
        make_diff(pair, str(tmp_path / 'x'), pairs={'k': 'v' * _format.MAX_HEADER})
    with pytest.raises(LvdiffError, match='more than the 1048576 a reader accepts'):
        make_diff(pair, str(tmp_path / 'y'), fmt='hyperlayer', pairs={'k': 'v' * _format.MAX_HEADER})
    with pytest.raises(FormatError, match='pairs, more than'):
        make_diff(pair, str(tmp_path / 'z'), pairs=dict(('k%d' % i, '') for i in range(_codec.MAX_PAIRS + 1)))


def _first_w(data):
    """(start, end) of the first W line of a HyperLayer file."""
    start = data.index(b'\nW ') + 1
    return start, data.index(b'\n', start)


@pytest.mark.parametrize('field', [b'-8', b'0x8', b'1_0', b'+8', b' 8', b'8 ', b'1' * 17, b'\xd9\xa3'])
def test_hyperlayer_hex_fields_are_strict(pair, tmp_path, field):
    """Finding 5: int(x, 16) took '-8' (a negative offset passed the range check: verify said OK,
    apply wrote data and then failed), '0x8', '1_0'."""
    good = go_hyperlayer(pair, [])
    start, end = _first_w(good)
    w, off, length = good[start:end].split(b' ')
    for line in (b'W %s %s' % (field, length), b'W %s %s' % (off, field)):
        bad = good[:start] + line + good[end:]
        assert isinstance(verify_bytes(bad), FormatError), line
        refused(pair, tmp_path, write(tmp_path, 'bad.hl', bad), verify_first=False)
    d_start = good.index(b'\nD ') + 1
    d_line = good[d_start:good.index(b'\n', d_start)]
    for i in (1, 2, 4):
        parts = d_line.split(b' ')
        parts[i] = field
        bad = good.replace(d_line, b' '.join(parts))
        assert isinstance(verify_bytes(bad), FormatError), parts


def test_hyperlayer_header_numbers_are_strict(pair, tmp_path):
    good = go_hyperlayer(pair, [])
    for old, new in [(b'Detect level: 2', b'Detect level: +2'), (b'Detect level: 2', b'Detect level: 7'),
                     (b'Chunk size: %d' % CS, b'Chunk size: 4_096'), (b'Volume size: ', b'Volume size: -'),
                     (b'Delta blocks: 9', b'Delta blocks: 99999999'),
                     (b'Name: snap', b'Name: snap\nName: other')]:
        bad = good.replace(old, new, 1)
        assert bad != good
        err = verify_bytes(bad)
        assert isinstance(err, FormatError), (new, err)
        refused(pair, tmp_path, write(tmp_path, 'bad.hl', bad), verify_first=False)


def test_hyperlayer_w_records_ascend(pair, tmp_path):
    """Finding 5: W records that overlap or go backwards were applied in file order."""
    good = go_hyperlayer(pair, [])
    first = good.index(b'\nW ') + 1
    rec = CS + len(good[first:good.index(b'\n', first) + 1]) + 1
    w1, w2 = good[first:first + rec], good[first + rec:first + 2 * rec]
    for bad in (good[:first] + w2 + w1 + good[first + 2 * rec:],   # swapped
                good[:first] + w1 + w1 + good[first + 2 * rec:]):  # one twice, one lost
        assert 'overlaps or goes backwards' in str(verify_bytes(bad))
        refused(pair, tmp_path, write(tmp_path, 'bad.hl', bad))


def test_hyperlayer_header_is_capped(tmp_path):
    """Finding 7: 29 MB of 'key:' lines cost 518 MB and 18 s; now refused after MAX_HEADER bytes."""
    lines = b''.join(b'k%d:\n' % i for i in range(4097))
    for data in (b'HYPERLAYER/1.0\n' + lines + b'\n',
                 b'HYPERLAYER/1.0\n' + b'k: ' + b'v' * 70000 + b'\n\n',
                 b'HYPERLAYER/1.0\n' + b''.join(b'k%d: %s\n' % (i, b'v' * 60000) for i in range(20)) + b'\n'):
        assert re.search('larger than|longer than', str(verify_bytes(data)))


def _threads():
    return set(threading.enumerate())


@pytest.mark.parametrize('fmt', ['lvdiff', 'hyperlayer'])
def test_readers_leak_no_thread(pair, tmp_path, fmt):
    """A header-only open, a failing open and an events() left early stop every thread."""
    path = str(tmp_path / 'd')
    make_diff(pair, path, fmt=fmt, level=3)
    before = _threads()
    with _diffio.open_diff(path) as reader:
        assert reader.header.incremental
    bad = open(path, 'rb').read()
    bad = bad.replace(b'Detect level: 3', b'Detect level: x') if fmt == 'hyperlayer' else with_header(
        path, chunk_size='x')
    with pytest.raises(FormatError):
        with _diffio.open_diff(write(tmp_path, 'bad', bad)):
            pass
    with _diffio.open_diff(path) as reader:
        events = reader.events()
        next(events)
        assert threading.active_count() == len(before) + 1  # the hashing thread runs
    assert _threads() == before
    del events


@pytest.mark.parametrize('fmt', ['lvdiff', 'hyperlayer'])
def test_diff_from_a_pipe_one_byte_at_a_time(pair, tmp_path, fmt):
    """Format detection read one peek(): a stream that brings its first bytes one by one was
    'not a diff file'."""
    path = str(tmp_path / 'd')
    make_diff(pair, path, fmt=fmt, level=3)
    data = open(path, 'rb').read()
    r, w = os.pipe()

    def send():
        with os.fdopen(w, 'wb', buffering=0) as out:
            for i in range(40):
                out.write(data[i:i + 1])
                time.sleep(0.005)
            out.write(data[40:])
    sender = threading.Thread(target=send)
    sender.start()
    target = target_copy(pair, tmp_path)
    fd = os.open(target, os.O_RDWR)
    try:
        with os.fdopen(r, 'rb', buffering=0) as f:
            result = _diffio.apply(_diffio.open_reader(f), fd)
    finally:
        os.close(fd)
        sender.join()
    assert sha256_file(target) == sha256_file(pair.src)
    assert result['sha1'] == hashlib.sha1(data).hexdigest()

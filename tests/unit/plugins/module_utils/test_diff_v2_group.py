"""GROUP records of format 2 (docs/format.md, "GROUP records"): what the writer gathers, and each damage or
forgery of one refused with its exact error, nothing written to the target, what a keyless host catches."""

import json
import os
import struct

import pytest
import zstandard

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _format

from ansible_collections.lvdiff.thin.tests.support.diffs import (
    file_seal, group_ranges, group_table_len, lvdiff_bytes, lvdiff_records, make_diff, open_records)
from ansible_collections.lvdiff.thin.tests.support.volumes import CONTENTS, VolumePair
from ansible_collections.lvdiff.thin.tests.unit.plugins.module_utils import test_diff_v2_hostile as hostile
from ansible_collections.lvdiff.thin.tests.unit.plugins.module_utils.test_diff_v2_hostile import (
    CS, TAG_FAIL, _bomb, _frame, flipped, good, layout, nth, rebuild, refused, save, verify)

pair, key = hostile.pair, hostile.key  # its fixtures, used here by name

VOL = 16 * CS


def corrupt(i, rec, what):
    return 'corrupt diff: record %d at file offset %d: %s' % (i, rec[1], what)


def events_of(path, key=None):
    with _diffio.open_diff(path, key) as reader:
        return [(k, o, n, bytes(p) if p is not None else None) for k, o, n, p in reader.events()]


def groups(data):
    return [(i, r) for i, r in enumerate(layout(data)) if r[0] == 'G']


# --- what the writer writes ---------------------------------------------------------------------------


@pytest.mark.parametrize('sealed', [False, True])
def test_consecutive_pieces_go_out_as_group_records(pair, tmp_path, key, sealed):
    """Data 2, 4-5 (a DISCARD at 6 ends the group), then 8, 10, 12: two GROUP records, COMPRESSED, each
    range of the plan in its table, the same events as the version 1 file, smaller than one frame a record."""
    k = key if sealed else None
    v1 = good(pair, tmp_path, 'v1.diff')
    path = good(pair, tmp_path, 'g.diff', compress_level=3, key=k)
    data = open(path, 'rb').read()
    found = groups(data)
    assert len(found) == 2 and not [r for r in layout(data) if r[0] == 'D']
    assert [r[2] for i, r in found] == [_format.COMPRESSED | (_format.SEALED if sealed else 0)] * 2
    assert [group_ranges(r[5]) for i, r in found] == [
        [(2 * CS, CS), (4 * CS, 2 * CS)], [(8 * CS, CS), (10 * CS, CS), (12 * CS, CS)]]
    assert [(r[3], r[4]) for i, r in found] == [(2 * CS, 3 * CS), (8 * CS, 3 * CS)]
    assert events_of(path, k) == events_of(v1)
    trailer = json.loads(layout(data)[-1][5][:-16] if sealed else layout(data)[-1][5])
    assert trailer['records'] == {'check': 7, 'data': 5, 'discard': 2, 'group': 2}
    assert trailer['stored_data_bytes'] == sum(len(r[5]) - group_table_len(r[5]) - (16 if sealed else 0)
                                               for i, r in found)
    with _diffio.open_diff(path) as reader:  # keyless (or without zstd): ranges checked, payloads None
        ranges = ((2 * CS, CS), (4 * CS, 2 * CS), (8 * CS, CS), (10 * CS, CS), (12 * CS, CS))
        assert [e for e in reader.events(decode=False) if e[0] == 'data'] == [('data', o, n, None) for o, n in ranges]


def test_group_bytes_bounds_a_group(pair, tmp_path, monkeypatch):
    monkeypatch.setattr(_format, 'GROUP_BYTES', 2 * CS)
    path = good(pair, tmp_path, compress_level=3)
    data = open(path, 'rb').read()
    # 2 then 4-5 would be 3 chunks: 2 goes alone (a DATA record), 4-5 alone too; 8+10, then 12 alone
    assert [(r[0], r[3], r[4]) for r in layout(data) if r[0] in 'DG'] == [
        ('D', 2 * CS, CS), ('D', 4 * CS, 2 * CS), ('G', 8 * CS, 2 * CS), ('D', 12 * CS, CS)]
    assert events_of(path) == events_of(good(pair, tmp_path, 'v1.diff'))


@pytest.mark.parametrize('sealed', [False, True])
def test_incompressible_data_goes_out_raw(tmp_path, key, sealed):
    base = {c: ('b', c) for c in range(8)}
    src = dict(base)
    src.update((c, ('s', c)) for c in (1, 2, 4))
    rnd = VolumePair(tmp_path, CS, base, src, base_chunks=8, src_chunks=8, content=CONTENTS['random'])
    path = str(tmp_path / 'r.diff')
    written = make_diff(rnd, path, level=3, compress_level=3, key=key if sealed else None)
    data = open(path, 'rb').read()
    assert [(r[0], r[2] & _format.COMPRESSED, r[3]) for r in layout(data) if r[0] in 'DG'] == [
        ('D', 0, CS), ('D', 0, 4 * CS)]
    assert written['stored_data_bytes'] == written['data_bytes'] == 3 * CS
    estimate = _diffio.estimate_size(rnd.header(level=3), _plan(rnd), compress_level=3, key=key if sealed else None)
    assert written['size'] <= estimate
    with _diffio.open_diff(path, key if sealed else None) as reader:
        assert _diffio.verify(reader)['records'] == {'check': 2, 'data': 2, 'discard': 0}


@pytest.mark.parametrize('sealed', [False, True])
def test_many_small_incompressible_pieces_go_out_raw(tmp_path, key, sealed):
    """Twelve random chunks with gaps: the heads a GROUP would save (28 bytes each, 44 sealed) pay for more than
    the frame's overhead over the raw data, but a frame is never longer than its data: raw DATA records."""
    base = {c: ('b', c) for c in range(24)}
    src = dict(base)
    src.update((c, ('s', c)) for c in range(0, 24, 2))
    rnd = VolumePair(tmp_path, 4096, base, src, base_chunks=24, src_chunks=24, content=CONTENTS['random'])
    path = str(tmp_path / 'r.diff')
    written = make_diff(rnd, path, level=0, compress_level=3, key=key if sealed else None)
    data = open(path, 'rb').read()
    assert [r[0] for r in layout(data) if r[0] in 'DG'] == ['D'] * 12
    assert written['stored_data_bytes'] == written['data_bytes']
    v1 = str(tmp_path / 'v1.diff')
    make_diff(rnd, v1, level=0)
    assert events_of(path, key if sealed else None) == events_of(v1)


def test_a_group_holds_at_most_4096_ranges(tmp_path):
    """5000 pieces of 512 bytes with gaps (chunk_size 512 is valid) fit in 4 MiB but not in one table: the
    writer ends a GROUP at 4096 ranges, and the file reads back."""
    from ansible_collections.lvdiff.thin.plugins.module_utils._codec import DiffHeader
    size = 8 << 20
    src = str(tmp_path / 'src')
    with open(src, 'wb') as f:
        f.write((b'sector %d of a compressible volume\n' * 300000)[:size])
    header = DiffHeader(volume={'name': 's', 'uuid': 'S', 'thin_id': 2, 'size': size}, base=None, chunk_size=512,
                        checksum_level=0, sample_seed=0)
    path = str(tmp_path / 'many.diff')
    fd, out = os.open(src, os.O_RDONLY), os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        writer = _format.LvdiffWriter(out, header, compress_level=1)
        for k in range(5000):
            writer.data_from(fd, 1024 * k, 512)
        writer.finish()
    finally:
        os.close(fd)
        os.close(out)
    data = open(path, 'rb').read()
    assert [struct.unpack_from('<I', r[5])[0] for i, r in groups(data)] == [4096, 904]
    with _diffio.open_diff(path) as reader:
        assert sum(1 for e in reader.events() if e[0] == 'data') == 5000
        assert reader.counts == {'check': 0, 'data': 5000, 'discard': 0, 'group': 2}


def _plan(vp):
    from ansible_collections.lvdiff.thin.plugins.module_utils._plan import Plan
    plan = Plan(vp.cs, vp.src_size, vp.base_size)
    plan.add_delta(vp.delta())
    return plan


# --- a damaged range table (no key needed: every rule is checked on the plaintext table) ---------------


def _table(ranges, count=None):
    return struct.pack('<I', len(ranges) if count is None else count) + b''.join(
        struct.pack('<QQ', o, n) for o, n in ranges)


def second_group(pair, tmp_path, change, msg, fix_trailer=True):
    """The compressed file with its second GROUP record (8, 10, 12) changed by change(rec, ranges, frame), CRCs
    and trailer fixed: refused by apply and a keyless verify, with msg(i, rec) exactly."""
    data = open(good(pair, tmp_path, 'base.diff', compress_level=3), 'rb').read()
    i, rec = groups(data)[1]

    def fn(recs):
        r = recs[i]
        table = group_table_len(r[5])
        change(r, group_ranges(r[5]), r[5][table:])
    path = save(tmp_path, 'bad.diff', rebuild(data, fn, fix_trailer=fix_trailer))
    expected = corrupt(i, rec, msg)
    assert str(verify(path, decode=False)) == expected
    refused(pair, tmp_path, path, expected)


def _body(fn):
    def change(r, ranges, frame):
        r[5] = fn(ranges, frame)
    return change


@pytest.mark.parametrize('count', [0, 1, 4097])
def test_range_count_out_of_bounds(pair, tmp_path, count):
    second_group(pair, tmp_path, _body(lambda rs, fr: _table(rs[:count] if count < 2 else rs, count) + fr),
                 'GROUP record of %d ranges: a GROUP holds 2 to 4096' % count)


def test_table_longer_than_the_body(pair, tmp_path):
    second_group(pair, tmp_path, _body(lambda rs, fr: _table(rs, 1000) + fr[:100]),
                 'GROUP range table of 1000 ranges (16004 bytes) is longer than the %d-byte body' % (4 + 48 + 100))
    second_group(pair, tmp_path, _body(lambda rs, fr: b'\x02\0'),
                 'GROUP body of 2 bytes, too short for its range count')


@pytest.mark.parametrize('ranges,n,what', [
    ([(8 * CS, CS), (12 * CS, CS), (10 * CS, CS)], 2, 'goes backwards'),
    ([(8 * CS, CS), (8 * CS + 512, CS), (12 * CS, CS)], 1, 'overlaps'),
    ([(8 * CS, CS), (10 * CS, 0), (12 * CS, 2 * CS)], 1, 'empty'),
    ([(8 * CS, CS), (10 * CS, CS - 512), (VOL - 512, 1024)], 2, 'leaves the volume'),
])
def test_ranges_out_of_order_overlapping_empty_or_outside(pair, tmp_path, ranges, n, what):
    o, length = ranges[n]
    second_group(pair, tmp_path, _body(lambda rs, fr: _table(ranges) + fr),
                 'GROUP range %d (%d+%d) is empty, overlaps, goes backwards or leaves the %d-byte volume'
                 % (n, o, length, VOL))


def test_first_range_not_at_the_record_offset(pair, tmp_path):
    def change(r, ranges, frame):
        r[3] = 7 * CS  # the head's offset, still after the DISCARD before it
    second_group(pair, tmp_path, change, "GROUP first range at %d, not at the record's offset %d" % (8 * CS, 7 * CS))


def test_ranges_not_summing_to_the_length(pair, tmp_path):
    def change(r, ranges, frame):
        r[4] += 512
    second_group(pair, tmp_path, change, "GROUP ranges hold %d bytes, not the record's length %d"
                 % (3 * CS, 3 * CS + 512))


def test_frame_not_shorter_than_the_data(pair, tmp_path):
    second_group(pair, tmp_path, _body(lambda rs, fr: _table(rs) + b'\0' * 3 * CS),
                 'GROUP record of length %d with a %d-byte frame: a frame is shorter than the data it holds, and '
                 'not empty' % (3 * CS, 3 * CS))
    second_group(pair, tmp_path, _body(lambda rs, fr: _table(rs)),
                 'GROUP record of length %d with a 0-byte frame: a frame is shorter than the data it holds, and '
                 'not empty' % (3 * CS))


def test_group_without_the_compressed_flag(pair, tmp_path):
    def change(r, ranges, frame):
        r[1] = 0
    second_group(pair, tmp_path, change, 'GROUP record without the COMPRESSED flag')


# --- frames that lie (the key or zstd needed: decode) ------------------------------------------------------


@pytest.mark.parametrize('frame,what', [
    (zstandard.ZstdCompressor(write_content_size=True).compress(b'\0' * (3 * CS + 512)),
     'the zstd frame declares %d bytes of content, not its length %d' % (3 * CS + 512, 3 * CS)),
    (zstandard.ZstdCompressor(write_content_size=True).compress(b'\0' * (3 * CS - 512)),
     'the zstd frame declares %d bytes of content, not its length %d' % (3 * CS - 512, 3 * CS)),
    (_frame(_bomb(1 << 30), 3 * CS), 'decompresses to more than its length %d (refused: decompression bomb)'
     % (3 * CS)),
    (_frame(_bomb(128 << 10), 3 * CS), 'decompresses to %d bytes, not its length %d' % (128 << 10, 3 * CS)),
], ids=['more', 'fewer', 'bomb', 'short'])
def test_group_frames_that_lie(pair, tmp_path, frame, what):
    data = open(good(pair, tmp_path, 'base.diff', compress_level=3), 'rb').read()
    i, rec = groups(data)[1]

    def fn(recs):
        recs[i][5] = recs[i][5][:group_table_len(recs[i][5])] + frame
    path = save(tmp_path, 'bad.diff', rebuild(data, fn))
    assert isinstance(verify(path, decode=False), dict)  # the structure is right
    refused(pair, tmp_path, path, corrupt(i, rec, 'GROUP record (volume offset %d, length %d): %s'
                                          % (8 * CS, 3 * CS, what)))


# --- where a GROUP may not be ---------------------------------------------------------------------------


def test_group_in_a_version_1_file(pair, tmp_path):
    data = open(good(pair, tmp_path, 'v1.diff'), 'rb').read()
    i, rec = nth(data, 'D')

    def fn(recs):
        recs[i][0] = _format.GROUP
    path = save(tmp_path, 'bad.diff', rebuild(data, fn))
    refused(pair, tmp_path, path, corrupt(i, rec, 'GROUP record in a version 1 file (only version 2 files have '
                                                  'them)'), both=True)


def test_group_in_a_file_without_compression(pair, tmp_path, key):
    """An encrypted file whose header names no compression, every record re-sealed with the right key: the
    GROUP is refused for what it is, with or without the key."""
    data = open(good(pair, tmp_path, 'base.diff', compress_level=3, key=key), 'rb').read()
    seal = file_seal(data, key)
    i, rec = groups(data)[0]

    def fn(recs):
        header = json.loads(recs[0][5])
        header['compression'] = None
        recs[0][5] = json.dumps(header, sort_keys=True, separators=(',', ':')).encode()
    bad = save(tmp_path, 'bad.diff', rebuild(data, fn, seal=seal))
    start = layout(open(bad, 'rb').read())[i][1]
    msg = 'corrupt diff: record %d at file offset %d: GROUP record in a file whose header names no compression' % (
        i, start)
    assert str(verify(bad)) == msg
    refused(pair, tmp_path, bad, msg, key=key, both=True)


# --- sealed GROUP records: the table authenticated, the frame encrypted --------------------------------


def sealed_file(pair, tmp_path, key, name='base.diff'):
    return open(good(pair, tmp_path, name, compress_level=3, key=key), 'rb').read()


def test_flipped_table_byte_in_a_sealed_file(pair, tmp_path, key):
    data = sealed_file(pair, tmp_path, key)
    i, rec = groups(data)[1]
    # a range moved by 512 bytes, still in order: the CRC catches the flip; with the CRC and trailer fixed, a
    # keyless host cannot tell, the tag (over head and table) can
    at = rec[1] + 24 + 4 + 16  # the second range's offset
    assert str(verify(save(tmp_path, 'crc.diff', flipped(data, at + 1)))).endswith(
        'GROUP record checksum mismatch (volume offset %d, length %d)' % (8 * CS, 3 * CS))

    def fn(recs):
        body = bytearray(recs[i][5])
        struct.pack_into('<Q', body, 4 + 16, 10 * CS + 512)
        recs[i][5] = bytes(body)
    forged = save(tmp_path, 'forged.diff', rebuild(data, fn))
    assert isinstance(verify(forged), dict)
    refused(pair, tmp_path, forged, TAG_FAIL % (i, rec[1], 'GROUP', 8 * CS, 3 * CS), key=key)


def test_sealed_group_moved(pair, tmp_path, key):
    """The DISCARD before the second GROUP dropped, the trailer's counts and SHA-1 fixed (its tag kept): the
    order still holds for a keyless host; the GROUP's nonce (its index) no longer matches."""
    data = sealed_file(pair, tmp_path, key)
    i, rec = groups(data)[1]
    assert layout(data)[i - 1][0] == 'Z'
    bad = save(tmp_path, 'moved.diff', rebuild(data, lambda rs: rs.__delitem__(i - 1)))
    assert isinstance(verify(bad), dict)
    refused(pair, tmp_path, bad, TAG_FAIL % (i - 1, layout(data)[i - 1][1], 'GROUP', 8 * CS, 3 * CS), key=key)


def test_sealed_group_duplicated(pair, tmp_path, key):
    data = sealed_file(pair, tmp_path, key)
    i, rec = groups(data)[1]
    bad = save(tmp_path, 'dup.diff', rebuild(data, lambda rs: rs.insert(i, list(rs[i]))))
    start = rec[1] + 28 + len(rec[5])
    msg = ('corrupt diff: record %d at file offset %d: GROUP range %d+%d overlaps, goes backwards or leaves the '
           '%d-byte volume' % (i + 1, start, 8 * CS, 3 * CS, VOL))
    assert str(verify(bad)) == msg  # anyone sees a range twice
    refused(pair, tmp_path, bad, msg, key=key)


def test_sealed_group_from_another_file(pair, tmp_path, key):
    a = sealed_file(pair, tmp_path, key, 'a.diff')
    b = sealed_file(pair, tmp_path, key, 'b.diff')
    i, rec = groups(a)[0]
    assert groups(b)[0][1][:5] == rec[:5] and groups(b)[0][1][5] != rec[5]
    recs = lvdiff_records(a)
    recs[i] = lvdiff_records(b)[i]
    bad = save(tmp_path, 'spliced.diff', lvdiff_bytes(recs, preamble=a[:12], trailer_seal=file_seal(a, key)))
    assert isinstance(verify(bad), dict)
    refused(pair, tmp_path, bad, TAG_FAIL % (i, rec[1], 'GROUP', 2 * CS, 3 * CS), key=key)
    # A's own record back: the helpers change nothing else
    recs[i] = lvdiff_records(a)[i]
    assert lvdiff_bytes(recs, preamble=a[:12], trailer_seal=file_seal(a, key)) == a
    assert lvdiff_bytes(open_records(a, file_seal(a, key)), preamble=a[:12], seal=file_seal(a, key)) == a


@pytest.mark.parametrize('sealed', [False, True])
def test_truncated_group(pair, tmp_path, key, sealed):
    data = sealed_file(pair, tmp_path, key if sealed else None)
    i, rec = groups(data)[0]
    for cut in (rec[1] + 10, rec[1] + 24 + 30, rec[1] + 24 + len(rec[5]) - 1, rec[1] + 24 + len(rec[5]) + 2):
        path = save(tmp_path, 'cut.diff', data[:cut])
        msg = str(verify(path, decode=False))
        assert msg.startswith('truncated diff: file ends at byte %d inside record %d' % (cut, i)), msg
        refused(pair, tmp_path, path, msg, key=key if sealed else None)

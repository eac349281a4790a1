"""Structure-aware fuzzing of both diff readers (issue 9), lvdiff versions 1 and 2.

Good diffs of both formats, full and incremental, compressed and encrypted, are taken apart
into fields (header values, record heads, offsets, lengths, hex fields, payloads), mutated,
and put back together with their checksums recomputed where the mutation should get past
them (each record's CRC, the trailer, HyperLayer's "Delta blocks" and D-record CRCs). Half
the mutations of an encrypted file are made to its plaintext records, sealed again with the
key (so they reach what is behind the tags: frames, ranges, counts); the other half to its
records as stored (so the tags must catch them). For every case:

- verify and apply either succeed or raise LvdiffError: never any other exception;
- verify refuses everything apply refuses (apply may also refuse a wrong base, which
  verify cannot see, or a target file system that cannot hold the volume);
- a successful apply leaves exactly the bytes the verified records describe;
- a refused apply with verify_first (what a target that cannot be thrown away gets), or
  one refused by a base check, leaves the target as it was;
- for an encrypted file, verify without the key passes whatever verify with the key passes.

``make unit`` runs a few thousand cases with a fixed seed; ``make fuzz`` runs
LVDIFF_FUZZ_CASES of them (LVDIFF_FUZZ_SEED picks another sequence).
"""

import hashlib
import io
import json
import os
import random
import re
import threading
import zlib

import pytest

import zstandard

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _format, _seal
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import BaseMismatchError, LvdiffError

from ansible_collections.lvdiff.thin.tests.support.diffs import (
    file_seal, go_hyperlayer, group_ranges, group_table_len, lvdiff_bytes, lvdiff_records, make_diff, open_records)
from ansible_collections.lvdiff.thin.tests.support.volumes import CS, VolumePair, mixed_chunk

CASES = int(os.environ.get('LVDIFF_FUZZ_CASES', '2500'))
SEED = int(os.environ.get('LVDIFF_FUZZ_SEED', '20261130'))
SPC = CS // 512
_MODEL_LIMIT = 1 << 20  # targets larger than this (a mutated volume size) are compared in places
KEY = _seal.Key(bytes(range(32)), 'key file fuzz.key')
KEYED = ('v2-k-full', 'v2-zk-l3')  # the corpus files encrypted with KEY

INTS = [0, 1, -1, 511, 512, CS, -CS, 2 ** 31, 2 ** 32, 2 ** 63 - 512, 2 ** 63 - 1, 2 ** 63, 2 ** 64,
        1 << 40, 0.5, 1e3, True, False, None, 'x', '', [], {}, [[[]]], '512']
HEX = [b'-8', b'0x8', b'1_0', b'+8', b' 8', b'', b'g', b'0', b'0' * 16 + b'8', b'F' * 16, b'F' * 17,
       b'7' + b'F' * 15, b'\xd9\xa3']
DEC = [b'-4096', b'+4096', b' 4096', b'4_096', b'0x1000', b'', b'0', b'1', b'511', b'513',
       b'9' * 20, str(2 ** 63).encode(), str(2 ** 63 - 512).encode(), b'\xd9\xa3', b'4096.0']


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    """(base bytes, source bytes, {name: good diff bytes}) for a volume that grew, with
    overwrites, discards, new chunks and holes."""
    tmp = tmp_path_factory.mktemp('fuzz')
    base = {c: ('b', c) for c in range(10)}
    src = dict(base)
    for c in (1, 2, 6, 8):  # 6 and 8 (compressible): a run of two pieces, a GROUP record when compressed
        src[c] = ('s', c)
    for c in (4, 9):
        del src[c]
    for c in (11, 13):
        src[c] = ('n', c)
    pair = VolumePair(tmp, CS, base, src, base_chunks=12, src_chunks=14, content=mixed_chunk)
    diffs = {}
    for name, kw in [('lvdiff-l3', dict(level=3)), ('lvdiff-l2', dict(level=2)),
                     ('lvdiff-full', dict(full=True)), ('hl-l3', dict(fmt='hyperlayer', level=3)),
                     ('v2-z-l2', dict(level=2, compress_level=3)), ('v2-k-full', dict(full=True, key=KEY)),
                     ('v2-zk-l3', dict(level=3, compress_level=1, key=KEY))]:
        path = str(tmp / name)
        make_diff(pair, path, **kw)
        diffs[name] = open(path, 'rb').read()
    diffs['hl-go'] = go_hyperlayer(pair, ['Author: x', 'Quoted: "a: b"'])
    for name in ('v2-z-l2', 'v2-zk-l3'):  # compressed: the runs of data go out as GROUP records
        assert _format.GROUP in [r[0] for r in lvdiff_records(diffs[name])]
    return open(pair.base, 'rb').read(), open(pair.src, 'rb').read(), diffs


# --- mutations -------------------------------------------------------------------------------

def _int_near(rng, orig):
    if isinstance(orig, int) and not isinstance(orig, bool) and rng.random() < 0.5:
        return orig + rng.choice([-CS, -512, -1, 1, 512, CS, orig, -orig])
    return rng.choice(INTS)


def mutate_lvdiff(rng, data, base, seal=None):
    """A mutated lvdiff file, and what was done (for the failure message). seal: mutate the plaintext records
    of an encrypted file and seal them again."""
    recs = open_records(data, seal) if seal is not None else lvdiff_records(data)
    what = ['plaintext records sealed again'] if seal is not None else []
    for dummy in range(rng.choice([1, 1, 1, 2, 3])):
        op = rng.randrange(11)
        i = rng.randrange(len(recs))
        rec = recs[i]
        if op == 0:  # a header field
            try:
                d = json.loads(recs[0][5])
                d['volume'].get, d['pairs'].get, (d.get('base') or {}).get
            except (ValueError, RecursionError, KeyError, TypeError, AttributeError):
                continue  # record 0 is no longer a readable header
            where = rng.choice([d, d, d['volume'], d.get('base') or d, d['pairs']])
            key = rng.choice(sorted(where) + ['new'])
            if rng.random() < 0.15:
                where.pop(key, None)
            else:
                where[key] = _int_near(rng, where.get(key)) if rng.random() < 0.9 else 'DEEP'
            # 'DEEP': nested further than a parser's recursion limit
            recs[0][5] = json.dumps(d).encode().replace(b'"DEEP"', b'[' * 3000 + b']' * 3000)
            what.append('header %s' % key)
        elif op in (1, 2):  # a record's offset or length
            field = 3 + (op - 1)
            rec[field] = rng.choice([rec[field] + rng.choice([-CS, -512, 512, CS]), 0, 512, len(base),
                                     len(base) + CS, 14 * CS, 14 * CS - CS, 2 ** 63, 2 ** 64 - 1,
                                     rng.randrange(16) * CS]) % 2 ** 64
            what.append('record %d field %d' % (i, field))
        elif op == 3:  # type, flags, reserved
            field = rng.choice([0, 0, 1, 2])
            rec[field] = rng.choice(b'HCDZTG') if field == 0 and rng.random() < 0.8 else rng.randrange(1, 256)
            what.append('record %d head byte %d' % (i, field))
        elif op == 4:  # a body cut, grown or changed
            body = bytearray(rec[5])
            choice = rng.randrange(3)
            if choice == 0 and body:
                del body[rng.randrange(len(body)):]
            elif choice == 1:
                body += bytes(rng.choice([1, 512, CS]))
            elif body:
                body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
            rec[5] = bytes(body)
            if rec[0] == _format.DATA and rng.random() < 0.5:
                rec[4] = len(body)
            what.append('record %d body' % i)
        elif op == 5 and len(recs) > 2:
            del recs[i]
            what.append('dropped record %d' % i)
        elif op == 6:
            recs.insert(i, list(rec))
            what.append('duplicated record %d' % i)
        elif op == 7 and i + 1 < len(recs):
            recs[i], recs[i + 1] = recs[i + 1], recs[i]
            what.append('swapped records %d, %d' % (i, i + 1))
        elif op == 8 and rec[0] == _format.CHECK:  # a check made to pass: its digest recomputed
            rec[3], rec[4] = rng.choice([(0, CS), (len(base) - CS, CS), (len(base), CS), (CS, 3 * CS)])
            rec[5] = hashlib.sha256(base[rec[3]:rec[3] + rec[4]]).digest()
            what.append('check %d moved' % i)
        elif op == 9 and rec[0] == _format.DATA:  # a zstd frame of other data, of this length or another
            n = rng.choice([rec[4], rec[4], rec[4] - 512, rec[4] + 512, CS, 1])
            raw = rng.choice([bytes(max(n, 0)), rng.randbytes(max(n, 0)), b'ab' * (max(n, 0) // 2)])
            rec[5] = zstandard.ZstdCompressor(level=1, write_content_size=rng.random() < 0.9).compress(raw)
            rec[1] |= _format.COMPRESSED if rng.random() < 0.9 else 0
            if rng.random() < 0.5:
                rec[4] = len(raw)
            what.append('record %d a frame of %d bytes' % (i, len(raw)))
        elif op == 10 and rec[0] == _format.GROUP and len(rec[5]) >= 4:  # its range table or its frame
            table = group_table_len(rec[5])
            whole = table == 4 + 16 * int.from_bytes(rec[5][:4], 'little')  # else a count already mutated
            ranges = [list(r) for r in group_ranges(rec[5])] if whole else [[0, CS], [CS, CS]]
            frame = rec[5][table:]
            choice = rng.randrange(5)
            if choice == 0:  # a range's offset or length moved
                r = rng.choice(ranges)
                r[rng.randrange(2)] = max(0, r[0] + rng.choice([-CS, -512, 512, CS, 14 * CS, 2 ** 63]))
            elif choice == 1:  # a range dropped or added
                if rng.random() < 0.5 and ranges:
                    del ranges[rng.randrange(len(ranges))]
                else:
                    ranges.insert(rng.randrange(len(ranges) + 1), [rng.randrange(16) * CS, CS])
            elif choice == 2:  # a count that lies
                rec[5] = (rng.choice([0, 1, len(ranges) + 1, 4097, 2 ** 32 - 1]).to_bytes(4, 'little')
                          + rec[5][4:])
                what.append('group %d count' % i)
                continue
            elif choice == 3:  # a frame of the concatenated ranges' length, or another
                n = rng.choice([sum(r[1] for r in ranges), rec[4], rec[4] + 512, CS])
                frame = zstandard.ZstdCompressor(level=1, write_content_size=True).compress(
                    rng.choice([bytes(n), rng.randbytes(n), b'ab' * (n // 2)]))
            if rng.random() < 0.7 and ranges:  # the head made to agree with the table
                rec[3], rec[4] = ranges[0][0], sum(r[1] for r in ranges) % 2 ** 64
            rec[5] = len(ranges).to_bytes(4, 'little') + b''.join(
                (r[0] % 2 ** 64).to_bytes(8, 'little') + (r[1] % 2 ** 64).to_bytes(8, 'little') for r in ranges) + frame
            what.append('group %d table or frame (%d)' % (i, choice))
    out = lvdiff_bytes(recs, preamble=data[:12], fix_trailer=rng.random() < 0.85, seal=seal)
    return _raw(rng, out, what), what


def _raw(rng, data, what):
    """Sometimes a cut, a flipped bit or garbage at the end, with no checksum fixed."""
    r = rng.random()
    if r < 0.06:
        cut = rng.randrange(len(data))
        what.append('cut at %d' % cut)
        return data[:cut]
    if r < 0.10:
        at = rng.randrange(len(data))
        what.append('bit flipped at %d' % at)
        return data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1:]
    if r < 0.12:
        what.append('appended')
        return data + rng.choice([b'\n', b'x', b'W 0 8\n'])
    return data


def hl_parts(data):
    end = data.index(b'\n\n')
    header = data[:end].split(b'\n')
    pos = end + 2
    checks = []
    while data.startswith(b'D ', pos):
        nl = data.index(b'\n', pos)
        checks.append(data[pos:nl].split(b' '))
        pos = nl + 1
    if checks:
        pos += 1
    writes = []
    while pos < len(data):
        nl = data.index(b'\n', pos)
        line = data[pos:nl].split(b' ')
        n = int(line[2], 16) * 512
        writes.append([line, data[nl + 1:nl + 1 + n]])
        pos = nl + 1 + n + 1
    return header, checks, writes


def hl_bytes(header, checks, writes):
    out = b'\n'.join(header) + b'\n\n'
    out += b''.join(b' '.join(c) + b'\n' for c in checks) + (b'\n' if checks else b'')
    return out + b''.join(b' '.join(line) + b'\n' + payload + b'\n' for line, payload in writes)


def _hexnum(rng, orig):
    if rng.random() < 0.5:
        try:
            return b'%X' % max(0, int(orig, 16) + rng.choice([-SPC, -1, 1, SPC, 2 * SPC]))
        except ValueError:
            pass
    if rng.random() < 0.3:
        return b'%x' % rng.randrange(16 * SPC)
    return rng.choice(HEX)


def mutate_hyperlayer(rng, data, base):
    header, checks, writes = hl_parts(data)
    what = []
    for dummy in range(rng.choice([1, 1, 1, 2, 3])):
        op = rng.randrange(8)
        if op == 0:  # a header line: a value, or the line dropped, doubled or added
            i = rng.randrange(1, len(header))
            key, sep, value = header[i].partition(b': ')
            choice = rng.randrange(6)
            if choice < 3:
                header[i] = key + b': ' + rng.choice(DEC)
            elif choice == 3:
                del header[i]
            elif choice == 4:
                header.insert(i, header[i])
            else:
                header.append(b'k%d: v' % rng.randrange(4) if rng.random() < 0.7 else b'no colon')
            what.append('header line %d' % i)
        elif op == 1 and checks:  # a D field
            c = rng.choice(checks)
            field = rng.choice([1, 2, 3, 4])
            c[field] = _hexnum(rng, c[field]) if field != 3 else rng.choice([b'CRC32', b'MD5', b'crc32'])
            what.append('D field %d' % field)
        elif op == 2 and writes:  # a W field
            w = rng.choice(writes)
            field = rng.choice([1, 2])
            w[0][field] = _hexnum(rng, w[0][field])
            what.append('W field %d' % field)
        elif op == 3 and writes:  # a payload cut, grown or changed
            w = rng.choice(writes)
            choice = rng.randrange(3)
            if choice == 0:
                w[1] = w[1][:rng.randrange(len(w[1]))]
            elif choice == 1:
                w[1] += b'\0' * rng.choice([1, 512])
            else:
                p = bytearray(w[1])
                p[rng.randrange(len(p))] ^= 1
                w[1] = bytes(p)
            what.append('W payload')
        elif op == 4 and len(writes) > 1:
            i = rng.randrange(len(writes) - 1)
            writes[i], writes[i + 1] = writes[i + 1], writes[i]
            what.append('swapped W %d' % i)
        elif op == 5 and writes:
            i = rng.randrange(len(writes))
            if rng.random() < 0.5:
                del writes[i]
            else:
                writes.insert(i, [list(writes[i][0]), writes[i][1]])
            what.append('dropped or doubled W %d' % i)
        elif op == 6:
            lst = checks if checks and rng.random() < 0.5 else None
            if lst:
                i = rng.randrange(len(lst))
                del lst[i]
                what.append('dropped D %d' % i)
        elif op == 7:  # a W record added somewhere (a valid or a stray range)
            sector = rng.randrange(16) * SPC
            writes.insert(rng.randrange(len(writes) + 1), [[b'W', b'%X' % sector, b'%X' % SPC], os.urandom(CS)])
            what.append('W added at sector %d' % sector)
    if rng.random() < 0.8:  # what a writer would announce: get past the count check
        header = [b'Delta blocks: %d' % len(writes) if h.startswith(b'Delta blocks: ') else h for h in header]
    for c in checks:  # and make parseable checks pass against the real base
        try:
            off, n = int(c[1], 16) * 512, int(c[2], 16) * 512
        except ValueError:
            continue
        if rng.random() < 0.7 and 0 <= off and off + n <= len(base) and n < 1 << 20:
            c[4] = b'%x' % zlib.crc32(base[off:off + n])
    return _raw(rng, hl_bytes(header, checks, writes), what), what


# --- the oracle ------------------------------------------------------------------------------

def verify_model(data, key=None, decode=True):
    """(error or None, header, events with payloads copied): one verify pass."""
    events = []
    header = None
    try:
        reader = _diffio.open_reader(io.BytesIO(data), key)
        header = reader.header
        for kind, offset, length, payload in reader.events(decode):
            events.append((kind, offset, length, bytes(payload) if kind == 'data' and decode else None))
    except LvdiffError as e:
        return e, header, events
    return None, header, events


def expected_target(start, header, events):
    """What the verified records say the target holds, as far as _MODEL_LIMIT; and the data
    records beyond it, to be compared in place."""
    size = header.volume['size']
    model = bytearray(start[:min(size, _MODEL_LIMIT)])
    model += bytes(min(size, _MODEL_LIMIT) - len(model))
    far = []
    for kind, offset, length, payload in events:
        if kind == 'check':
            continue
        if offset + length > _MODEL_LIMIT:
            far.append((offset, payload if kind == 'data' else bytes(min(length, CS))))
            if offset >= _MODEL_LIMIT:
                continue
            length = _MODEL_LIMIT - offset
        model[offset:offset + length] = payload[:length] if kind == 'data' else bytes(length)
    return bytes(model), far


def _target_error(e):
    """Refusals about the target, not the file: verify cannot see them."""
    return isinstance(e, BaseMismatchError) or 'cannot make the target file' in e.msg


class Case:
    def __init__(self, tmp_path):
        self.target = str(tmp_path / 'target.img')
        self.diff = str(tmp_path / 'case.diff')

    def reset(self, start):
        with open(self.target, 'wb') as f:
            f.write(start)

    def contents(self, limit=_MODEL_LIMIT):
        with open(self.target, 'rb') as f:
            return f.read(limit)

    def apply(self, data, verify_first, key=None):
        with open(self.diff, 'wb') as f:
            f.write(data)
        fd = os.open(self.target, os.O_RDWR)
        try:
            _diffio.apply_file(self.diff, fd, verify_first=verify_first, key=key)
        except LvdiffError as e:
            return e
        finally:
            os.close(fd)
        return None


def check_one(case, data, start, source=None, key=None):
    """Run the oracle on one file; start: the target's bytes before (the base, or empty); key: of an encrypted
    file."""
    err_v, header, events = verify_model(data, key)
    if key is not None:  # whatever the key accepts, a keyless host accepts (it checks a part of the same)
        err_keyless = verify_model(data, decode=False)[0]
        assert err_v is not None or err_keyless is None, 'verify without the key refuses: %s' % err_keyless
    case.reset(start)
    err_a = case.apply(data, verify_first=False, key=key)  # as lvpatch, into a volume it can throw away
    if err_v is None:
        assert err_a is None or _target_error(err_a), 'verify passed a file that apply refuses: %s' % err_a
    if err_a is None:
        assert err_v is None, 'apply took a file that verify refuses: %s' % err_v
        model, far = expected_target(start, header, events)
        assert os.path.getsize(case.target) == header.volume['size']
        assert case.contents() == model, 'apply wrote other bytes than the records say'
        with open(case.target, 'rb') as f:
            for offset, payload in far:
                f.seek(offset)
                assert f.read(len(payload)) == payload
        if source is not None:
            assert case.contents() == source
    elif isinstance(err_a, BaseMismatchError):
        assert case.contents(None) == start, 'a base check failed after the target was changed'
    if err_v is not None:  # a target that cannot be thrown away: verified first, left unchanged
        case.reset(start)
        assert case.apply(data, verify_first=True, key=key) is not None
        assert case.contents(None) == start, 'a refused apply changed the target'
    return err_v, err_a


def run_fuzz(corpus, tmp_path, cases, seed):
    base, source, diffs = corpus
    case = Case(tmp_path)
    threads = threading.active_count()
    names = sorted(diffs)
    seals = dict((name, file_seal(diffs[name], KEY)) for name in KEYED)
    for name in names:  # the unmutated files apply and give the source
        key = KEY if name in KEYED else None
        assert check_one(case, diffs[name], b'' if 'full' in name else base, source, key) == (None, None)
    outcomes = {}
    for n in range(cases):
        rng = random.Random('%d/%d' % (seed, n))
        name = names[n % len(names)]
        start = b'' if 'full' in name else base
        key = KEY if name in KEYED else None
        if name.startswith('hl'):
            data, what = mutate_hyperlayer(rng, diffs[name], base)
        else:
            data, what = mutate_lvdiff(rng, diffs[name], base, seals[name] if key and rng.random() < 0.5 else None)
        try:
            err_v, err_a = check_one(case, data, start, source if data == diffs[name] else None, key)
        except Exception as e:
            bad = str(tmp_path / ('failing-%d-%d.diff' % (seed, n)))
            with open(bad, 'wb') as f:
                f.write(data)
            raise AssertionError('fuzz case %d (seed %d, %s: %s), input kept in %s: %s: %s'
                                 % (n, seed, name, '; '.join(what), bad, type(e).__name__, e)) from e
        key = 'accepted' if err_v is None and err_a is None else re.sub(r'[\d]+', 'N', str(err_v or err_a))[:50]
        outcomes[key] = outcomes.get(key, 0) + 1
    assert threading.active_count() == threads, 'a reader left a thread running'
    return outcomes


def test_fuzz_both_formats(corpus, tmp_path):
    outcomes = run_fuzz(corpus, tmp_path, CASES, SEED)
    # The mutations must reach past the checksums: some files are accepted, many refused for
    # many different reasons.
    assert outcomes.get('accepted', 0) > CASES // 50
    assert len(outcomes) > 30
    print('\n%d fuzz cases, seed %d:' % (CASES, SEED))
    for key, count in sorted(outcomes.items(), key=lambda kv: -kv[1])[:40]:
        print('%7d  %s' % (count, key))

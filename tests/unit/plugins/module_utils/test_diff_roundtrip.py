"""Round trips of both diff formats on sparse files acting as thin volumes."""

import hashlib
import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import BaseMismatchError
from ansible_collections.lvdiff.thin.plugins.module_utils._plan import Plan

from ansible_collections.lvdiff.thin.tests.support.diffs import make_diff
from ansible_collections.lvdiff.thin.tests.support.volumes import CS, VolumePair, allocated_bytes, sha256_file


def apply_to(diff, target, **kw):
    fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        with _diffio.open_diff(diff) as reader:
            return _diffio.apply(reader, fd, **kw)
    finally:
        os.close(fd)


def restore(pair, tmp_path, diff, full=False, **kw):
    target = str(tmp_path / 'target.img')
    if full:
        open(target, 'wb').close()
    else:
        subprocess.run(['cp', '--sparse=always', pair.base, target], check=True)
    result = apply_to(diff, target, **kw)
    return target, result


@pytest.fixture
def pair(tmp_path):
    """Writes, overwrites, a shared run, discards, holes, and growth from 64 to 80 chunks."""
    base = {c: ('b', c) for c in list(range(0, 40)) + [50, 51, 60]}
    src = dict(base)
    for c in (3, 4, 5, 20, 39):
        src[c] = ('s', c)           # overwritten: 'different'
    for c in (10, 11, 12, 51):
        del src[c]                  # discarded: 'left_only'
    for c in (45, 46, 63, 64, 70, 79):
        src[c] = ('n', c)           # newly written, incl. past the base's end: 'right_only'
    return VolumePair(tmp_path, CS, base, src, base_chunks=64, src_chunks=80)


@pytest.mark.parametrize('fmt', ['lvdiff', 'hyperlayer'])
@pytest.mark.parametrize('level', [0, 1, 2, 3])
def test_incremental_round_trip(pair, tmp_path, fmt, level):
    diff = str(tmp_path / 'd.diff')
    written = make_diff(pair, diff, fmt=fmt, level=level)
    with open(diff, 'rb') as f:
        assert written['sha1'] == hashlib.sha1(f.read()).hexdigest()
    assert written['size'] == os.path.getsize(diff)
    target, result = restore(pair, tmp_path, diff)
    assert sha256_file(target) == sha256_file(pair.src)
    assert result['sha1'] == written['sha1']
    assert result['header']['checksum_level'] == level
    # 5 overwritten + 6 new data chunks; 4 discarded, and the 13 unmapped chunks past the base end
    assert (written['data_chunks'], written['discard_chunks']) == (11, 4 + 13)


def test_discards_keep_target_sparse(pair, tmp_path):
    diff = str(tmp_path / 'd.diff')
    make_diff(pair, diff)
    target, result = restore(pair, tmp_path, diff)
    # the 4 discarded chunks became holes: the target holds exactly the source's chunks
    assert allocated_bytes(target) == allocated_bytes(pair.src) == 45 * CS
    assert result['records']['discard'] >= 2


def test_checksum_levels_check_what_they_promise(pair, tmp_path):
    counts = {}
    for level in range(4):
        diff = str(tmp_path / ('d%d' % level))
        counts[level] = make_diff(pair, diff, level=level)['checks']
    # touched base chunks below the base's 64-chunk end: 3-5, 10-12, 20, 39, 45-46, 51, 63
    assert counts[0] == 0 and counts[1] == 1
    assert counts[2] == 12  # fewer than 64 touched: the sample is all of them
    assert counts[3] == 7   # every touched chunk, coalesced into runs


def test_level2_sample_is_seeded_spread_and_bounded(tmp_path):
    touched = list(range(0, 20000, 2))
    base = {c: ('b', c) for c in range(20000)}
    src = dict(base)
    for c in touched:
        src[c] = ('s', c)
    pair = VolumePair.__new__(VolumePair)
    pair.cs, pair.base_map, pair.src_map = 512, base, src
    pair.base_size = pair.src_size = 20000 * 512
    plan = Plan(512, pair.src_size, pair.base_size).add_delta(pair.delta())
    a = list(plan.base_checks(2, seed=1))
    b = list(plan.base_checks(2, seed=1))
    c = list(plan.base_checks(2, seed=2))
    assert a == b and a != c
    chunks = [off // 512 for off, dummy in a]
    assert len(chunks) == 64 + 10000 // 128 + 2 or len(chunks) == 64 + 10000 // 128 + 1
    assert chunks == sorted(set(chunks)) and all(ch in touched for ch in chunks)
    assert chunks[0] == 0 and chunks[-1] == touched[-1]
    # spread: every tenth of the volume holds some of the sample
    assert {ch * 10 // 20000 for ch in chunks} == set(range(10))


@pytest.mark.parametrize('fmt', ['lvdiff'])
def test_full_image_round_trip(pair, tmp_path, fmt):
    diff = str(tmp_path / 'full.diff')
    written = make_diff(pair, diff, fmt=fmt, full=True)
    assert written['checks'] == 0 and written['discard_chunks'] == 0
    assert written['data_chunks'] == len(pair.src_map)
    target, result = restore(pair, tmp_path, diff, full=True)
    assert sha256_file(target) == sha256_file(pair.src)
    assert result['header']['base'] is None


def test_shrunk_volume(tmp_path):
    base = {c: ('b', c) for c in range(64)}
    src = {c: ('b', c) for c in range(32)}
    src[5] = ('s', 5)
    pair = VolumePair(tmp_path, CS, base, src, base_chunks=64, src_chunks=32)
    diff = str(tmp_path / 'd.diff')
    written = make_diff(pair, diff, level=3)
    assert written['discard_chunks'] == 0  # base-only chunks past the new end are not sent
    target, dummy = restore(pair, tmp_path, diff)
    assert os.path.getsize(target) == pair.src_size
    assert sha256_file(target) == sha256_file(pair.src)


def test_stale_shared_mapping_past_base_end_is_sent(tmp_path):
    """A base shrunk on the source keeps mappings past its end that thin_delta calls 'same'."""
    base = {c: ('b', c) for c in range(48)}
    src = dict(base)
    pair = VolumePair(tmp_path, CS, base, src, base_chunks=32, src_chunks=48)
    diff = str(tmp_path / 'd.diff')
    written = make_diff(pair, diff)
    assert written['data_chunks'] == 16
    target, dummy = restore(pair, tmp_path, diff)
    assert sha256_file(target) == sha256_file(pair.src)


def test_pairs_survive_any_text(pair, tmp_path):
    pairs = {'Author': 'BigVan (alpc_metic@live.com)', 'url:with:colons': 'a:b:c', 'multi\nline': 'x\ny\r\n',
             'ключ': 'значение ✓', '': 'empty key', 'yes': 'null', 'quote"s': "'single' \"double\""}
    diff = str(tmp_path / 'd.diff')
    make_diff(pair, diff, pairs=pairs)
    with _diffio.open_diff(diff) as reader:
        assert reader.header.pairs == pairs


def test_hyperlayer_pairs_round_trip_with_yaml_specials(pair, tmp_path):
    pairs = {'Author': 'x: y', 'Flag': 'yes', 'Nothing': 'null', 'Hash': '#not a comment', 'Quoted': "'q'",
             'Num': '0x1F', 'Multi': 'a\nb', 'Unicode': 'é ✓'}
    diff = str(tmp_path / 'd.hl')
    make_diff(pair, diff, fmt='hyperlayer', pairs=pairs)
    with _diffio.open_diff(diff) as reader:
        assert reader.header.format == 'hyperlayer'
        assert reader.header.pairs == pairs


def test_diff_through_a_pipe(pair, tmp_path):
    """Strictly sequential: the writer writes into a pipe, the reader reads from one."""
    import threading
    header = pair.header()
    plan = Plan(pair.cs, pair.src_size, pair.base_size).add_delta(pair.delta())
    r, w = os.pipe()
    src, base = os.open(pair.src, os.O_RDONLY), os.open(pair.base, os.O_RDONLY)
    out = {}

    def produce():
        try:
            out['written'] = _diffio.write_diff(w, header, plan, src, base)
        finally:
            os.close(w)

    t = threading.Thread(target=produce)
    t.start()
    target = str(tmp_path / 'target.img')
    shutil.copyfile(pair.base, target)
    fd = os.open(target, os.O_RDWR)
    with os.fdopen(r, 'rb') as f:
        result = _diffio.apply(_diffio.open_reader(f), fd)
    t.join()
    os.close(fd)
    assert result['sha1'] == out['written']['sha1']
    assert sha256_file(target) == sha256_file(pair.src)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_round_trips(tmp_path, data):
    nbase = data.draw(st.integers(1, 96))
    nsrc = data.draw(st.integers(1, 96))
    base_chunks = data.draw(st.sets(st.integers(0, nbase - 1)))
    src_chunks = data.draw(st.sets(st.integers(0, nsrc - 1)))
    base = {c: ('b', c) for c in base_chunks}
    src = {}
    for c in src_chunks:
        src[c] = base[c] if c in base and data.draw(st.booleans()) else ('s', c)
    fmt = data.draw(st.sampled_from(['lvdiff', 'hyperlayer']))
    level = data.draw(st.integers(0, 3))
    cs = data.draw(st.sampled_from([512, 4096, 3 * 4096]))
    sub = pathlib.Path(tempfile.mkdtemp(dir=str(tmp_path)))
    pair = VolumePair(sub, cs, base, src, base_chunks=nbase, src_chunks=nsrc)
    diff = str(sub / 'd')
    make_diff(pair, diff, fmt=fmt, level=level)
    target, dummy = restore(pair, sub, diff)
    assert sha256_file(target) == sha256_file(pair.src)
    if fmt == 'lvdiff' or nbase <= nsrc:
        full = str(sub / 'f')
        if fmt == 'lvdiff':
            make_diff(pair, full, full=True)
            target, dummy = restore(pair, sub, full, full=True)
            assert sha256_file(target) == sha256_file(pair.src)


@pytest.mark.parametrize('fmt', ['lvdiff', 'hyperlayer'])
def test_base_checks_of_chunks_larger_than_any_buffer(tmp_path, fmt):
    """8 MiB chunks: a HyperLayer check covers a whole chunk, twice the 4 MiB buffers. The check must
    cover all of it: the round trip works, and a base differing only past the first 4 MiB is refused."""
    big = 8 << 20
    base = {0: ('b', 0), 1: ('b', 1), 2: ('b', 2)}
    src = dict(base)
    src[1] = ('s', 1)
    pair = VolumePair(tmp_path, big, base, src, base_chunks=3, src_chunks=3)
    diff = str(tmp_path / 'd.diff')
    make_diff(pair, diff, fmt=fmt, level=3)
    target, dummy = restore(pair, tmp_path, diff)
    assert sha256_file(target) == sha256_file(pair.src)

    wrong = str(tmp_path / 'wrong.img')
    subprocess.run(['cp', '--sparse=always', pair.base, wrong], check=True)
    with open(wrong, 'r+b') as f:
        f.seek(big + (6 << 20))     # chunk 1, past its first 4 MiB
        f.write(b'not the base')
    before = sha256_file(wrong)
    first_bad = big if fmt == 'hyperlayer' else big + (4 << 20)   # lvdiff checks 4 MiB at a time
    with pytest.raises(BaseMismatchError, match='base check failed at byte %d ' % first_bad):
        apply_to(diff, wrong)
    assert sha256_file(wrong) == before

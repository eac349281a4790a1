"""Checks tests/support/thinpool.py against the REAL thin-provisioning tools.

Other tests trust the generator's truth (``Scenario.delta``, ``dump_runs``,
``mappings``); here every claim is compared with what thin_restore, thin_delta
and thin_dump actually do with the generated metadata, parsed with a plain
full XML parse (no code shared with the parser under test), with both tool
generations: the C++ 0.9.0 and the Rust 1.1.x.
"""
import random
import subprocess
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.lvdiff.thin.tests.support import thinpool
from ansible_collections.lvdiff.thin.tests.support.thinpool import PoolSpec, ThinToolError, snapshot_pair

# Each test that runs the tools runs once per generation (0.9.0 and 1.1.x; tests/unit/conftest.py),
# with that generation's tools first on PATH; a missing generation fails, never skips.
needs_tools = pytest.mark.usefixtures("thin_tools")


# ---------------------------------------------------------------------------
# running the real tools and parsing their output (full parse, on purpose)


def run_tool(name, *args):
    p = subprocess.run([thinpool.find_tool(name)] + [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, check=False)
    assert p.returncode == 0, "%s %s failed: %s" % (name, args, p.stderr.decode())
    return ET.fromstring(p.stdout)


def tool_delta(meta, snap1, snap2):
    """(superblock attrs, diff attrs, [(kind, begin, length)]) from thin_delta."""
    sb = run_tool("thin_delta", "--snap1", snap1, "--snap2", snap2, meta)
    assert sb.tag == "superblock"
    diffs = list(sb)
    assert len(diffs) == 1 and diffs[0].tag == "diff"
    runs = []
    for el in diffs[0]:
        assert el.tag in thinpool.KINDS, el.tag
        assert set(el.attrib) == {"begin", "length"}
        runs.append((el.tag, int(el.get("begin")), int(el.get("length"))))
    return dict(sb.attrib), dict(diffs[0].attrib), runs


def tool_dump(meta, dev_id=None):
    """(superblock attrs, {dev_id: (device attrs, [(o, d, len, time)])}) from thin_dump."""
    args = ["--dev-id", dev_id] if dev_id is not None else []
    sb = run_tool("thin_dump", *(args + [meta]))
    assert sb.tag == "superblock"
    devices = {}
    for dev in sb:
        assert dev.tag == "device"
        runs = []
        for m in dev:
            if m.tag == "single_mapping":
                runs.append((int(m.get("origin_block")), int(m.get("data_block")), 1,
                             int(m.get("time"))))
            else:
                assert m.tag == "range_mapping", m.tag
                # thin_dump never prints a range of one
                assert int(m.get("length")) > 1
                runs.append((int(m.get("origin_begin")), int(m.get("data_begin")),
                             int(m.get("length")), int(m.get("time"))))
        devices[int(dev.get("dev_id"))] = (dict(dev.attrib), runs)
    return dict(sb.attrib), devices


def build(pool_or_scenario, tmp_path, name="pool"):
    xml = tmp_path / (name + ".xml")
    meta = tmp_path / (name + ".bin")
    pool_or_scenario.write_xml(xml)
    pool_or_scenario.restore(xml, meta)
    return meta


def check_against_tools(sc, meta):
    """Every truth the Scenario offers equals the real tools' output."""
    pool = sc.pool
    b, s = sc.base_id, sc.snap_id
    for snap1, snap2 in ((b, s), (s, b), (b, b), (s, s)):
        sb, diff, runs = tool_delta(meta, snap1, snap2)
        assert diff == {"left": str(snap1), "right": str(snap2)}
        assert sb["data_block_size"] == str(pool.data_block_size)
        assert sb["nr_data_blocks"] == str(pool.nr_data_blocks)
        assert runs == sc.delta(snap1, snap2), (snap1, snap2)
        # the generic run-walk re-implementation agrees too
        assert runs == pool.delta(snap1, snap2), (snap1, snap2)

    sb, devices = tool_dump(meta)
    assert sb["data_block_size"] == str(pool.data_block_size)
    assert sb["nr_data_blocks"] == str(pool.nr_data_blocks)
    assert sorted(devices) == sorted((b, s))
    for dev_id in (b, s):
        attrs, runs = devices[dev_id]
        assert runs == list(sc.dump_runs(dev_id))
        assert runs == list(pool.dump_runs(dev_id))
        assert [r[:3] for r in runs] == list(sc.mappings(dev_id))
        assert int(attrs["mapped_blocks"]) == sc.mapped_chunks(dev_id)
        assert sum(r[2] for r in runs) == sc.mapped_chunks(dev_id)
        sb1, only = tool_dump(meta, dev_id)
        assert list(only) == [dev_id]
        assert only[dev_id] == (attrs, runs)


# ---------------------------------------------------------------------------
# scenarios vs the real tools

SCENARIOS = [
    # (nr_chunks, change, discard, grow, extra kwargs)
    (3000, 0.05, 0.02, 200, dict(hole_fraction=0.05, fill_fraction=0.3)),
    (4096, 0.30, 0.10, 0, dict(hole_fraction=0.10)),
    (2500, 0.0, 0.0, 0, dict(hole_fraction=0.0)),        # identical snapshots: all "same"
    (2000, 1.0, 0.0, 64, dict(hole_fraction=0.03)),      # everything rewritten
    (2000, 0.0, 1.0, 0, dict(hole_fraction=0.03)),       # everything discarded
    (1500, 0.2, 0.2, 500, dict(hole_fraction=0.2, fill_fraction=1.0, run_length=5)),
]


@needs_tools
@pytest.mark.parametrize("layout", ["contiguous", "fragmented"])
@pytest.mark.parametrize("data_block_size", [128, 2048])
@pytest.mark.parametrize("case", range(len(SCENARIOS)))
def test_scenario_truth_matches_real_tools(tmp_path, layout, data_block_size, case):
    n, change, discard, grow, kw = SCENARIOS[case]
    sc = snapshot_pair(n, layout, change, discard_fraction=discard, grow_chunks=grow,
                       seed=case, data_block_size=data_block_size, **kw)
    meta = build(sc, tmp_path)
    check_against_tools(sc, meta)


@needs_tools
def test_first_scenario_exercises_every_kind(tmp_path):
    """The mixed scenario really contains what the tests above rely on."""
    for layout in ("contiguous", "fragmented"):
        n, change, discard, grow, kw = SCENARIOS[0]
        sc = snapshot_pair(n, layout, change, discard, grow, seed=0, **kw)
        kinds = {k for k, _b, _n in sc.delta(1, 2)}
        assert kinds == set(thinpool.KINDS), layout
        delta = sc.delta(1, 2)
        # growth past the base's end is right_only and comes last
        assert delta[-1][0] == "right_only"
        assert delta[-1][1] + delta[-1][2] == n + grow
        # holes exist: the runs do not tile [0, n + grow)
        assert sum(r[2] for r in delta) < n + grow
        # fill: right_only inside the base's range
        assert any(k == "right_only" and b < n for k, b, dummy in delta)
        # ascending, non-overlapping; two ranges of one kind always have a hole between
        for (k1, b1, n1), (k2, b2, _n2) in zip(delta, delta[1:]):
            assert b1 + n1 <= b2
            assert k1 != k2 or b1 + n1 < b2
        c = sc.counts()
        assert c["base_mapped"] == sc.mapped_chunks(1)
        assert c["snap_mapped"] == sc.mapped_chunks(2)


def test_layouts_look_as_promised():
    frag = snapshot_pair(4000, "fragmented", 0.1, 0.02, 50, seed=1)
    runs = list(frag.mappings(1))
    # fragmented: (almost) every chunk is its own single mapping
    assert len(runs) > 0.98 * frag.mapped_chunks(1)
    # changed chunks come in short runs
    diff = [n for k, _b, n in frag.delta(1, 2) if k == "different"]
    assert max(diff) <= 12 and len(diff) > 100
    cont = snapshot_pair(40000, "contiguous", 0.1, 0.02, 50, seed=1)
    assert len(list(cont.mappings(1))) < cont.mapped_chunks(1) / 50
    diff = [n for k, _b, n in cont.delta(1, 2) if k == "different"]
    assert sum(diff) / len(diff) > 20


@needs_tools
def test_randomized_small_pools(tmp_path):
    """Many tiny random scenarios: the tool agrees with the truth every time."""
    rng = random.Random(1234)
    for i in range(12):
        change = rng.choice([0.0, 0.01, 0.1, 0.5])
        discard = rng.choice([0.0, 0.05, 0.3]) if change < 0.7 else 0.0
        sc = snapshot_pair(rng.randint(1, 700), rng.choice(["contiguous", "fragmented"]),
                           change, discard, grow_chunks=rng.choice([0, 0, 1, 37]), seed=i,
                           base_id=rng.choice([1, 5]), snap_id=rng.choice([2, 9]),
                           data_block_size=rng.choice([128, 256, 2048]),
                           hole_fraction=rng.choice([0.0, 0.05, 0.4]),
                           fill_fraction=rng.choice([0.0, 0.5]),
                           run_length=rng.choice([None, 1, 3, 17]))
        d = tmp_path / str(i)
        d.mkdir()
        check_against_tools(sc, build(sc, d))


# ---------------------------------------------------------------------------
# hand-built pools: the thin_delta / thin_dump rules the module documents


def R(o, d, n, t=0):
    return (o, d, n, t)


EDGE_CASES = {
    # tail of the left run after the right side ran out (old dump_diff lost it)
    "left_tail": ([R(0, 100, 10)], [R(0, 100, 5), R(20, 200, 5)],
                  [("same", 0, 5), ("left_only", 5, 5), ("right_only", 20, 5)]),
    # "different" merges across data discontinuities on both sides
    "differ_merge": ([R(0, 100, 10), R(10, 400, 5)], [R(0, 200, 5), R(5, 300, 5), R(10, 600, 5)],
                     [("different", 0, 15)]),
    # "same" merges across left/right run boundaries and data extents
    "same_merge": ([R(0, 100, 3), R(3, 50, 4)], [R(0, 100, 2), R(2, 102, 1), R(3, 50, 4)],
                   [("same", 0, 7)]),
    # a hole ends a range: two "different" ranges are not merged over it
    "hole_splits": ([R(0, 100, 3), R(4, 200, 3)], [R(0, 300, 3), R(4, 400, 3)],
                    [("different", 0, 3), ("different", 4, 3)]),
    # kinds alternate without holes
    "alternate": ([R(0, 100, 10)], [R(2, 102, 1), R(5, 300, 1), R(9, 900, 3)],
                  [("left_only", 0, 2), ("same", 2, 1), ("left_only", 3, 2), ("different", 5, 1),
                   ("left_only", 6, 3), ("different", 9, 1), ("right_only", 10, 2)]),
    # right side longer at the tail
    "right_tail": ([R(0, 100, 3), R(5, 200, 3)], [R(0, 100, 10)],
                   [("same", 0, 3), ("right_only", 3, 2), ("different", 5, 3),
                    ("right_only", 8, 2)]),
    "empty_left": ([], [R(3, 100, 2)], [("right_only", 3, 2)]),
    "both_empty": ([], [], []),
}


@needs_tools
@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_thin_delta_rules_on_hand_built_pools(tmp_path, name):
    left, right, want = EDGE_CASES[name]
    pool = PoolSpec(128, 1000)
    pool.add_device(1, left)
    pool.add_device(2, right)
    meta = build(pool, tmp_path)
    assert pool.delta(1, 2) == want
    assert tool_delta(meta, 1, 2)[2] == want
    swap = {"left_only": "right_only", "right_only": "left_only"}
    assert tool_delta(meta, 2, 1)[2] == [(swap.get(k, k), b, n) for k, b, n in want]
    assert pool.delta(2, 1) == tool_delta(meta, 2, 1)[2]
    _sb, devices = tool_dump(meta)
    for dev_id in (1, 2):
        assert devices[dev_id][1] == list(pool.dump_runs(dev_id))


@needs_tools
def test_thin_dump_coalescing_rules(tmp_path):
    """Runs join iff origin and data continue and time is equal; input may be split."""
    pool = PoolSpec(256)
    pool.add_device(7, iter([  # a one-shot iterator is accepted (copied into arrays)
        (0, 10, 2), (2, 12, 3),        # joins: 0..5 -> 10..15
        (5, 15, 1, 1),                 # continues o and d but time differs: new run
        (6, 16, 1, 1),                 # joins the previous (time 1)
        (8, 18, 1),                    # origin gap: single mapping
        (9, 30, 4), (13, 34, 2, 0),    # joins
    ]), transaction=3, creation_time=4, snap_time=5)
    want = [(0, 10, 5, 0), (5, 15, 2, 1), (8, 18, 1, 0), (9, 30, 6, 0)]
    assert list(pool.dump_runs(7)) == want
    assert list(pool.dump_runs(7)) == want  # re-iterable
    assert pool.mapped_chunks(7) == 14
    assert pool.nr_data_blocks == 36
    meta = build(pool, tmp_path)
    sb, devices = tool_dump(meta)
    assert sb["nr_data_blocks"] == "36" and sb["data_block_size"] == "256"
    attrs, runs = devices[7]
    assert runs == want
    assert attrs["mapped_blocks"] == "14"
    assert (attrs["transaction"], attrs["creation_time"], attrs["snap_time"]) == ("3", "4", "5")
    assert tool_dump(meta, 99)[1] == {}  # unknown id: empty superblock, rc 0


def test_bad_input_is_rejected(tmp_path):
    with pytest.raises(ValueError):
        PoolSpec(100)
    pool = PoolSpec(128)
    pool.add_device(1, [(5, 0, 2), (6, 9, 1)])  # overlapping origins
    with pytest.raises(ValueError):
        pool.write_xml(tmp_path / "x.xml")
    pool = PoolSpec(128, nr_data_blocks=10)
    pool.add_device(1, [(0, 8, 4)])  # data blocks 8..11 >= 10
    with pytest.raises(ValueError):
        pool.write_xml(tmp_path / "x.xml")
    with pytest.raises(ValueError):
        snapshot_pair(100, "striped", 0.1)
    with pytest.raises(ValueError):
        snapshot_pair(100, "fragmented", 0.7, 0.5)


@needs_tools
def test_restore_failure_raises_with_stderr(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text('<superblock uuid="" time="0" transaction="0" data_block_size="128" '
                   'nr_data_blocks="10">\n  <device dev_id="1"\n')
    with pytest.raises(ThinToolError) as exc:
        PoolSpec(128, 10).restore(bad, tmp_path / "meta.bin")
    assert "thin_restore failed" in str(exc.value)
    assert len(str(exc.value)) > len("thin_restore failed (rc=1, metadata file 1 bytes): ")


# ---------------------------------------------------------------------------
# model properties that need no tools


def test_deterministic_for_a_seed():
    def fingerprint(sc):
        return (bytes(sc.state), sc.base_data.tobytes(), sc.new_data.tobytes(),
                sc.pool.nr_data_blocks)

    a = snapshot_pair(5000, "fragmented", 0.1, 0.05, 100, seed=42)
    b = snapshot_pair(5000, "fragmented", 0.1, 0.05, 100, seed=42)
    c = snapshot_pair(5000, "fragmented", 0.1, 0.05, 100, seed=43)
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(c)


@pytest.mark.parametrize("layout", ["contiguous", "fragmented"])
def test_fractions_are_roughly_honoured(layout):
    n = 200000
    # short-ish contiguous runs, so that the sample holds enough runs
    sc = snapshot_pair(n, layout, 0.1, 0.05, 1000, seed=5, hole_fraction=0.02,
                       run_length=64 if layout == "contiguous" else None)
    c = sc.counts()
    base = c["base_mapped"]
    assert abs(c["different"] / base - 0.1) < 0.03
    assert abs(c["left_only"] / base - 0.05) < 0.02
    assert abs(c["holes"] / n - 0.02) < 0.01
    assert c["right_only"] == 1000  # growth only (no fill)
    assert c["same"] + c["different"] + c["left_only"] == base
    # every data block is used at most once per device, and the two devices
    # share exactly the "same" chunks
    for dev in (1, 2):
        blocks = set()
        for _o, d, ln in sc.mappings(dev):
            rng = range(d, d + ln)
            assert not blocks.intersection(rng)
            blocks.update(rng)
        assert len(blocks) == sc.mapped_chunks(dev)
        assert max(blocks) < sc.pool.nr_data_blocks
        if dev == 1:
            base_blocks = blocks
    assert len(base_blocks & blocks) == c["same"]


@needs_tools
def test_cli_writes_xml_and_metadata(tmp_path):
    out = tmp_path / "bench"
    rc = thinpool.main(["--chunks", "3000", "--layout", "fragmented", "--change", "0.05",
                        "--discard", "0.01", "--grow", "10", "--out", str(out),
                        "--check", "--bench"])
    assert rc == 0
    assert (out / "pool.xml").stat().st_size > 0
    assert (out / "meta.bin").stat().st_size > 0

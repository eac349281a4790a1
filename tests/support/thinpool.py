"""Real thin-pool metadata with known truth, for tests and benchmarks.

Builds thin_dump-style XML for a thin pool, turns it into a real metadata file
with ``thin_restore`` (pure userspace, no device-mapper needed) and knows, from
its own model and without running any tool, what ``thin_delta`` and
``thin_dump`` print for it.  Pure standard library, Python 3.9+.

Typical use::

    sc = snapshot_pair(4096, "fragmented", 0.05, discard_fraction=0.01,
                       grow_chunks=100, seed=7)
    sc.pool.write_xml(tmp / "pool.xml")
    sc.pool.restore(tmp / "pool.xml", tmp / "meta.bin")
    # thin_delta --snap1 1 --snap2 2 meta.bin  prints exactly  sc.delta(1, 2)
    # thin_dump --dev-id 2 meta.bin            prints exactly  sc.dump_runs(2)

Benchmark CLI::

    python3 tests/support/thinpool.py --chunks 1048576 --layout fragmented \
        --change 0.05 --out tests/output/bench [--bench] [--check]

What thin_delta prints (thin-provisioning-tools 0.9.0, C++; checked against
the real binary by tests/unit/support/test_thinpool.py and read in upstream
``thin-provisioning/thin_delta.cc``; the Rust 1.1.x tools print the same runs
and are checked by the same tests, see tests/support/thintools.py):

* Each device's btree is read into runs that are contiguous in BOTH origin and
  data block (``mapping_recorder``).  The two run lists are walked in parallel
  (``dump_diff``) and every chunk is classified: mapped only in snap1 ->
  ``left_only``; only in snap2 -> ``right_only``; in both to the same data
  block -> ``same``; in both to different data blocks -> ``different``.
  Chunks unmapped in both produce nothing.
* The non-verbose ``simple_emitter`` merges a piece into the previous output
  range when it has the same kind and starts exactly where that range ends
  (``vbegin == vend``).  Data blocks play no part in that merge: e.g. three
  changed chunks 0..2 whose left/right data blocks are all scattered print as
  ONE ``<different begin="0" length="3"/>``; a run of shared chunks spanning
  several data extents is one ``<same>``.  A hole (unmapped in both) ends a
  range, so two ranges of one kind are never adjacent in the output.
* ``same`` IS emitted (also by ``--snap1 N --snap2 N``: one ``same`` range per
  run of mapped chunks).  Ranges come in ascending ``begin`` order; the tag is
  ``different`` (not the pre-1.0 Rust ``differ``).  An empty device is fine.
* The header is ``<superblock uuid="" time= transaction= data_block_size=
  nr_data_blocks=>`` then ``<diff left="snap1" right="snap2">``.
* An old upstream revision of ``dump_diff`` lost the rest of the last mapping
  when one side ran out first (cf. "tail blocks missing" before 0.4.2); 0.9.0
  walks both sides with a ``mapping_stream`` and gets tails right (tested).

So the output is a pure function of the per-chunk classification: the maximal
runs of equal kind.  That is how ``Scenario.delta`` computes it (a regex over a
byte-per-chunk state array); ``PoolSpec.delta`` instead re-implements the run
walk above for arbitrary pools; the tests check both against the real tool.

What thin_dump prints (``mapping_emit_visitor`` in metadata_dumper.cc): a
mapping extends the current run iff origin AND data block are both the next
ones AND the ``time`` is equal; a run of 1 is ``<single_mapping origin_block
data_block time/>``, longer ones ``<range_mapping origin_begin data_begin
length time/>``.  ``<device mapped_blocks>`` is recounted by thin_restore (the
XML value is ignored); transaction, creation_time and snap_time are kept.
``thin_dump --dev-id N`` prints only that device (an empty superblock, rc 0,
for an unknown id).

Measured here (2 cores, 0.9.0; ``--change 0.05``, 2 % holes, two devices of
~4.1 M mapped chunks each at 4 Mi chunks): model + XML take 0.3 s + 1.2 s at
1 Mi fragmented chunks (150 MB XML) and 1.4 s + 4.8 s at 4 Mi (612 MB XML),
with a generator peak RSS of 31 / 67 MB; thin_restore then needs 3.5 s / 18 s
(contiguous: 1.9 s / 10 s, XML under 1 MB).  Metadata use is ~33 bytes per
mapped chunk per device (270 MB allocated of the sparse 691 MB file at 4 Mi).
"""

from __future__ import annotations

import argparse
import array
import os
import random
import re
import shutil
import subprocess
import sys
import time
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

__all__ = [
    "KINDS", "PoolSpec", "Scenario", "ThinToolError", "find_tool",
    "snapshot_pair", "diff_runs", "coalesce_runs", "metadata_bytes",
]

KINDS = ("same", "different", "left_only", "right_only")
LAYOUTS = ("contiguous", "fragmented")

Run = Tuple[int, int, int]            # (origin_begin, data_begin, length)
TimedRun = Tuple[int, int, int, int]  # (origin_begin, data_begin, length, time)
DeltaRun = Tuple[str, int, int]       # (kind, begin, length)

_BLOCK = 4096            # metadata block size
_LEAF_ENTRIES = 252      # max entries of a mapping-tree leaf (4 KiB, 16-byte entries)
_BITMAP_ENTRIES = 16320  # blocks covered by one space-map bitmap block (2 bits each)
_MAX_META = 16 << 30     # dm-thin metadata devices are at most ~16 GiB

# ----------------------------------------------------------------------------
# tools


class ThinToolError(RuntimeError):
    """A thin-provisioning tool failed; the message carries its stderr."""


def find_tool(name: str) -> str:
    """Path of a thin-provisioning tool (also looked up in /usr/sbin, /sbin)."""
    path = os.environ.get("PATH", os.defpath) + os.pathsep + "/usr/sbin:/sbin"
    found = shutil.which(name, path=path)
    if not found:
        raise ThinToolError("%s not found (install thin-provisioning-tools)" % name)
    return found


def metadata_bytes(nr_mappings: int, nr_data_blocks: int, nr_devices: int = 2) -> int:
    """A metadata-file size that thin_restore can certainly fill.

    ``nr_mappings`` counts btree entries: the sum of mapped chunks over all
    devices (0.9.0 thin_restore does not share subtrees between devices).
    Sequential inserts leave leaves about half full, so count ~100 entries
    per leaf, then double everything; the file is sparse, so the slack is
    free.  Capped at the 16 GiB the kernel allows.
    """
    leaves = nr_mappings // (_LEAF_ENTRIES // 2 - 26) + 1
    internal = leaves // 100 + 1
    space_maps = (nr_data_blocks // _BITMAP_ENTRIES + 1) + 64
    blocks = 2 * (leaves + internal + space_maps + 8 * nr_devices) + 2048
    return min(_MAX_META, blocks * _BLOCK)


# ----------------------------------------------------------------------------
# run helpers


def coalesce_runs(runs: Iterable[Tuple[int, ...]]) -> Iterator[TimedRun]:
    """thin_dump's coalescing of mapping runs into ``(o, d, len, time)``.

    Input items are ``(origin_begin, data_begin, length[, time])`` (time 0 when
    absent), ascending and non-overlapping in origin (ValueError otherwise).
    Two runs join iff origin and data both continue and the time is equal.
    """
    cur_o = cur_d = cur_n = cur_t = None
    end = -1
    for r in runs:
        o, d, n = r[0], r[1], r[2]
        t = r[3] if len(r) > 3 else 0
        if n <= 0 or o < 0 or d < 0:
            raise ValueError("bad mapping run %r" % (r,))
        if o < end:
            raise ValueError("mapping runs not ascending/overlap at %r" % (r,))
        if cur_n is not None and o == end and d == cur_d + cur_n and t == cur_t:
            cur_n += n
        else:
            if cur_n is not None:
                yield (cur_o, cur_d, cur_n, cur_t)
            cur_o, cur_d, cur_n, cur_t = o, d, n, t
        end = o + n
    if cur_n is not None:
        yield (cur_o, cur_d, cur_n, cur_t)


class _DeltaMerger:
    """thin_delta 0.9.0's simple_emitter: join same kind when vbegin == vend."""

    __slots__ = ("out", "kind", "begin", "end")

    def __init__(self) -> None:
        self.out: List[DeltaRun] = []
        self.kind: Optional[str] = None
        self.begin = self.end = 0

    def add(self, kind: str, begin: int, length: int) -> None:
        if kind == self.kind and begin == self.end:
            self.end += length
            return
        if self.kind is not None:
            self.out.append((self.kind, self.begin, self.end - self.begin))
        self.kind, self.begin, self.end = kind, begin, begin + length

    def finish(self) -> List[DeltaRun]:
        if self.kind is not None:
            self.out.append((self.kind, self.begin, self.end - self.begin))
            self.kind = None
        return self.out


def diff_runs(left: Iterable[Tuple[int, ...]], right: Iterable[Tuple[int, ...]]) -> List[DeltaRun]:
    """``thin_delta`` (non-verbose) output for two devices' mapping runs.

    A re-implementation of 0.9.0's dump_diff + simple_emitter on runs
    ``(origin_begin, data_begin, length[, time])``; times are ignored.
    """
    em = _DeltaMerger()
    li, ri = iter(left), iter(right)

    def nxt(it):
        r = next(it, None)
        return (r[0], r[1], r[2]) if r is not None else None

    lm, rm = nxt(li), nxt(ri)
    while lm is not None and rm is not None:
        lo, ld, ln = lm
        ro, rd, rn = rm
        if lo < ro:
            k = min(ln, ro - lo)
            em.add("left_only", lo, k)
            lm = (lo + k, ld + k, ln - k) if k < ln else nxt(li)
        elif lo > ro:
            k = min(rn, lo - ro)
            em.add("right_only", ro, k)
            rm = (ro + k, rd + k, rn - k) if k < rn else nxt(ri)
        else:
            k = min(ln, rn)
            em.add("same" if ld == rd else "different", lo, k)
            lm = (lo + k, ld + k, ln - k) if k < ln else nxt(li)
            rm = (ro + k, rd + k, rn - k) if k < rn else nxt(ri)
    while lm is not None:
        em.add("left_only", lm[0], lm[2])
        lm = nxt(li)
    while rm is not None:
        em.add("right_only", rm[0], rm[2])
        rm = nxt(ri)
    return em.finish()


# ----------------------------------------------------------------------------
# PoolSpec


class _Device:
    __slots__ = ("dev_id", "runs", "mapped", "data_end", "transaction",
                 "creation_time", "snap_time")

    def __init__(self, dev_id, runs, mapped, data_end, transaction, creation_time, snap_time):
        self.dev_id = dev_id
        self.runs = runs
        self.mapped = mapped
        self.data_end = data_end
        self.transaction = transaction
        self.creation_time = creation_time
        self.snap_time = snap_time


class _ArrayRuns:
    """Compact storage for runs given as a one-shot iterator."""

    def __init__(self, runs: Iterable[Tuple[int, ...]]) -> None:
        self.o, self.d, self.n, self.t = (array.array("Q") for dummy in range(4))
        for r in runs:
            self.o.append(r[0])
            self.d.append(r[1])
            self.n.append(r[2])
            self.t.append(r[3] if len(r) > 3 else 0)

    def __iter__(self) -> Iterator[TimedRun]:
        return zip(self.o, self.d, self.n, self.t)

    def __len__(self) -> int:
        return len(self.o)


class PoolSpec:
    """A pool: data_block_size in 512-byte sectors (128 = 64 KiB, 2048 = 1 MiB), nr_data_blocks, devices.

    ``nr_data_blocks=None`` means "just enough for the highest data block".
    Devices hold mapping runs; lists and other re-iterable objects are kept
    by reference (iterated again on each use), one-shot iterators are copied
    into compact arrays.
    """

    def __init__(self, data_block_size: int = 128, nr_data_blocks: Optional[int] = None,
                 *, time: int = 2, transaction: int = 2) -> None:
        if data_block_size % 128 or not 128 <= data_block_size <= 2097152:
            raise ValueError("data_block_size must be a multiple of 128 sectors in "
                             "[128, 2097152] (64 KiB .. 1 GiB), got %r" % data_block_size)
        self.data_block_size = int(data_block_size)
        self._nr_data_blocks = nr_data_blocks
        self.time = time
        self.transaction = transaction
        self.devices: Dict[int, _Device] = {}

    # -- building -----------------------------------------------------------

    def add_device(self, dev_id: int, runs: Iterable[Tuple[int, ...]], *,
                   mapped_blocks: Optional[int] = None, data_end: Optional[int] = None,
                   transaction: int = 0, creation_time: int = 0, snap_time: int = 0) -> None:
        """Add thin device ``dev_id`` with mapping ``runs``.

        runs: iterable of ``(origin_begin, data_begin, length)`` mapping runs,
        ascending origin; a 4th item is the mapping's ``time`` (default 0).
        ``mapped_blocks``/``data_end`` (one past the highest data block) may
        be given when known, saving a pass over the runs.
        """
        if dev_id in self.devices:
            raise ValueError("device %d already added" % dev_id)
        if iter(runs) is runs:  # one-shot iterator: keep a compact copy
            runs = _ArrayRuns(runs)
        self.devices[dev_id] = _Device(int(dev_id), runs, mapped_blocks, data_end,
                                       transaction, creation_time, snap_time)

    def _stats(self, dev: _Device) -> None:
        if dev.mapped is None or dev.data_end is None:
            mapped = data_end = 0
            for o, d, n, _t in coalesce_runs(dev.runs):
                mapped += n
                data_end = max(data_end, d + n)
            dev.mapped, dev.data_end = mapped, data_end

    @property
    def nr_data_blocks(self) -> int:
        if self._nr_data_blocks is None:
            end = 0
            for dev in self.devices.values():
                self._stats(dev)
                end = max(end, dev.data_end)
            return max(end, 1)
        return self._nr_data_blocks

    @nr_data_blocks.setter
    def nr_data_blocks(self, value: Optional[int]) -> None:
        self._nr_data_blocks = value

    # -- truth ----------------------------------------------------------------

    def dump_runs(self, dev_id: int) -> Iterator[TimedRun]:
        """``(o, d, length, time)`` runs exactly as ``thin_dump`` prints them."""
        return coalesce_runs(self.devices[dev_id].runs)

    def mappings(self, dev_id: int) -> Iterator[Run]:
        """``(origin_begin, data_begin, length)`` as thin_dump prints them (lazy)."""
        return ((o, d, n) for o, d, n, _t in self.dump_runs(dev_id))

    def mapped_chunks(self, dev_id: int) -> int:
        dev = self.devices[dev_id]
        self._stats(dev)
        return dev.mapped

    def delta(self, snap1: int, snap2: int) -> List[DeltaRun]:
        """``thin_delta --snap1 snap1 --snap2 snap2`` ranges, from the runs."""
        return diff_runs(self.dump_runs(snap1), self.dump_runs(snap2))

    def metadata_size(self) -> int:
        """Bytes to truncate the metadata file to before thin_restore."""
        total = 0
        for dev in self.devices.values():
            self._stats(dev)
            total += dev.mapped
        return metadata_bytes(total, self.nr_data_blocks, len(self.devices))

    # -- output -----------------------------------------------------------------

    def write_xml(self, path) -> int:
        """Stream thin_dump-style XML to ``path``; returns its size in bytes.

        Runs are written coalesced as thin_dump would print them (a run of one
        is a ``single_mapping``).  Writes in batches; never builds the whole
        document in memory.
        """
        nr_data = self.nr_data_blocks
        for dev in self.devices.values():
            self._stats(dev)
            if dev.data_end > nr_data:
                raise ValueError("device %d maps data block %d >= nr_data_blocks %d"
                                 % (dev.dev_id, dev.data_end - 1, nr_data))
        with open(path, "w", encoding="ascii", buffering=1 << 20) as f:
            f.write('<superblock uuid="" time="%d" transaction="%d" data_block_size="%d"'
                    ' nr_data_blocks="%d">\n'
                    % (self.time, self.transaction, self.data_block_size, nr_data))
            for dev in sorted(self.devices.values(), key=lambda x: x.dev_id):
                f.write('  <device dev_id="%d" mapped_blocks="%d" transaction="%d"'
                        ' creation_time="%d" snap_time="%d">\n'
                        % (dev.dev_id, dev.mapped, dev.transaction,
                           dev.creation_time, dev.snap_time))
                buf: List[str] = []
                append = buf.append
                for o, d, n, t in coalesce_runs(dev.runs):
                    if n == 1:
                        append('    <single_mapping origin_block="%d" data_block="%d" time="%d"/>\n'
                               % (o, d, t))
                    else:
                        append('    <range_mapping origin_begin="%d" data_begin="%d" length="%d"'
                               ' time="%d"/>\n' % (o, d, n, t))
                    if len(buf) >= 16384:
                        f.write("".join(buf))
                        buf.clear()
                f.write("".join(buf))
                f.write("  </device>\n")
            f.write("</superblock>\n")
            return f.tell()

    def restore(self, xml_path, meta_path, *, quiet: bool = True) -> float:
        """Make ``meta_path`` a real metadata file from ``xml_path``.

        Truncates the file to ``metadata_size()`` (sparse) and runs
        ``thin_restore -i xml -o meta``; raises ThinToolError with stderr on
        failure.  Returns thin_restore's wall time in seconds.
        """
        size = self.metadata_size()
        with open(meta_path, "wb") as f:
            f.truncate(size)
        cmd = [find_tool("thin_restore"), "-i", os.fspath(xml_path), "-o", os.fspath(meta_path)]
        if quiet:
            cmd.append("-q")
        t0 = time.monotonic()
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, check=False)
        elapsed = time.monotonic() - t0
        if p.returncode != 0:
            raise ThinToolError("thin_restore failed (rc=%d, metadata file %d bytes): %s%s"
                                % (p.returncode, size, p.stderr.decode(errors="replace"),
                                   p.stdout.decode(errors="replace")[-2000:]))
        return elapsed


# ----------------------------------------------------------------------------
# Scenario: a base snapshot and a newer snapshot of the same volume

# Per-chunk state codes (one byte per virtual chunk).
HOLE, SAME, DIFF, BASE_ONLY, SNAP_ONLY = 0, 1, 2, 3, 4

_RE_DELTA = re.compile(rb"\x01+|\x02+|\x03+|\x04+")
_RE_BASE_MAPPED = re.compile(rb"[\x01-\x03]+")
_RE_SNAP_MAPPED = re.compile(rb"[\x01\x02\x04]+")
_RE_SNAP_TIMED = re.compile(rb"\x01+|[\x02\x04]+")   # time 0 (shared) / time 1 (new)
_RE_NEW = re.compile(rb"[\x02\x04]+")
_KIND_FWD = {SAME: "same", DIFF: "different", BASE_ONLY: "left_only", SNAP_ONLY: "right_only"}
_KIND_REV = {SAME: "same", DIFF: "different", BASE_ONLY: "right_only", SNAP_ONLY: "left_only"}
_T_CHANGE = bytes.maketrans(b"\x01", b"\x02")
_T_DISCARD = bytes.maketrans(b"\x01", b"\x03")

BASE_TIME, NEW_TIME = 0, 1  # mapping times: before / between the two snapshots


def _contiguous_runs(data, a: int, b: int, t: int) -> Iterator[TimedRun]:
    """Split chunks [a, b) with data blocks ``data[i]`` at data discontinuities."""
    start = a
    d0 = data[a]
    expect = d0 + 1
    for i in range(a + 1, b):
        d = data[i]
        if d != expect:
            yield (start, d0, i - start, t)
            start, d0 = i, d
        expect = d + 1
    yield (start, d0, b - start, t)


class _View:
    """Re-iterable view of a generator function (for PoolSpec.add_device)."""

    def __init__(self, fn, *args) -> None:
        self.fn, self.args = fn, args

    def __iter__(self):
        return self.fn(*self.args)


class Scenario:
    """Two devices: ``base_id`` (older state) and ``snap_id`` (newer snapshot).

    Model: ``state`` has one byte per virtual chunk of the snapshot (``nr_chunks
    + grow_chunks``): HOLE (unmapped in both), SAME (snapshot shares the base's
    block), DIFF (snapshot remapped to a new block), BASE_ONLY (discarded in
    the snapshot), SNAP_ONLY (mapped only in the snapshot: growth past the
    base's end or a filled base hole).  ``base_data[i]`` is the base's data
    block of chunk i, ``new_data[i]`` the snapshot's new block for DIFF and
    SNAP_ONLY chunks.  Base mappings have time 0, new ones time 1.
    All truth is derived from these arrays, never from the tools.
    """

    def __init__(self, *, nr_chunks, grow_chunks, layout, seed, base_id, snap_id,
                 data_block_size, state, base_data, new_data, data_end, params) -> None:
        self.nr_chunks = nr_chunks
        self.grow_chunks = grow_chunks
        self.layout = layout
        self.seed = seed
        self.base_id = base_id
        self.snap_id = snap_id
        self.params = params
        self.state = state
        self.base_data = base_data
        self.new_data = new_data
        self.data_end = data_end
        n = nr_chunks
        self._mapped = {
            base_id: state.count(SAME, 0, n) + state.count(DIFF, 0, n) + state.count(BASE_ONLY, 0, n),
            snap_id: state.count(SAME) + state.count(DIFF) + state.count(SNAP_ONLY),
        }
        pool = PoolSpec(data_block_size, data_end + data_end // 100 + 16, time=2, transaction=2)
        pool.add_device(base_id, _View(self._base_runs), mapped_blocks=self._mapped[base_id],
                        data_end=data_end, transaction=1, creation_time=1, snap_time=1)
        pool.add_device(snap_id, _View(self._snap_runs), mapped_blocks=self._mapped[snap_id],
                        data_end=data_end, transaction=2, creation_time=2, snap_time=2)
        self.pool = pool

    # -- mapping truth --------------------------------------------------------

    def _base_runs(self) -> Iterator[TimedRun]:
        data = self.base_data
        for m in _RE_BASE_MAPPED.finditer(self.state, 0, self.nr_chunks):
            yield from _contiguous_runs(data, m.start(), m.end(), BASE_TIME)

    def _snap_runs(self) -> Iterator[TimedRun]:
        # Shared (time 0) and new (time 1) runs never join in thin_dump; a new
        # run may span DIFF and SNAP_ONLY chunks (both new blocks, time 1).
        base, new = self.base_data, self.new_data
        for m in _RE_SNAP_TIMED.finditer(self.state):
            a, b = m.span()
            if self.state[a] == SAME:
                yield from _contiguous_runs(base, a, b, BASE_TIME)
            else:
                yield from _contiguous_runs(new, a, b, NEW_TIME)

    def dump_runs(self, dev_id: int) -> Iterator[TimedRun]:
        """``(o, d, length, time)`` exactly as ``thin_dump [--dev-id]`` prints (lazy)."""
        if dev_id == self.base_id:
            return self._base_runs()
        if dev_id == self.snap_id:
            return self._snap_runs()
        raise KeyError(dev_id)

    def mappings(self, dev_id: int) -> Iterator[Run]:
        """``(origin_begin, data_begin, length)`` runs as thin_dump prints them (lazy)."""
        return ((o, d, n) for o, d, n, _t in self.dump_runs(dev_id))

    def mapped_chunks(self, dev_id: int) -> int:
        return self._mapped[dev_id]

    # -- delta truth ------------------------------------------------------------

    def iter_delta(self, snap1: int, snap2: int) -> Iterator[DeltaRun]:
        """Lazy ``thin_delta --snap1 snap1 --snap2 snap2`` ranges (kind, begin, length)."""
        ids = (self.base_id, self.snap_id)
        if snap1 not in ids or snap2 not in ids:
            raise KeyError((snap1, snap2))
        st = self.state
        if snap1 == snap2:  # every mapped chunk is "same"; runs end at holes only
            rx, end = ((_RE_BASE_MAPPED, self.nr_chunks) if snap1 == self.base_id
                       else (_RE_SNAP_MAPPED, len(st)))
            return (("same", m.start(), m.end() - m.start()) for m in rx.finditer(st, 0, end))
        names = _KIND_FWD if snap1 == self.base_id else _KIND_REV
        return ((names[st[m.start()]], m.start(), m.end() - m.start())
                for m in _RE_DELTA.finditer(st))

    def delta(self, snap1: int, snap2: int) -> List[DeltaRun]:
        """``thin_delta --snap1 snap1 --snap2 snap2`` (non-verbose) ranges."""
        return list(self.iter_delta(snap1, snap2))

    def counts(self) -> Dict[str, int]:
        """Chunks per delta kind for (base, snap), plus holes and totals."""
        st = self.state
        return {
            "same": st.count(SAME), "different": st.count(DIFF),
            "left_only": st.count(BASE_ONLY), "right_only": st.count(SNAP_ONLY),
            "holes": st.count(HOLE), "base_mapped": self._mapped[self.base_id],
            "snap_mapped": self._mapped[self.snap_id],
        }

    # -- conveniences -------------------------------------------------------------

    def write_xml(self, path) -> int:
        return self.pool.write_xml(path)

    def restore(self, xml_path, meta_path) -> float:
        return self.pool.restore(xml_path, meta_path)

    def __repr__(self) -> str:
        return ("Scenario(%s, chunks=%d+%d, seed=%r, %r)"
                % (self.layout, self.nr_chunks, self.grow_chunks, self.seed, self.counts()))


# ----------------------------------------------------------------------------
# generation


def _sweep(rng: random.Random, n: int, gap_fraction: float,
           events: List[Tuple[int, float, float]]) -> Iterator[Tuple[int, int, int]]:
    """Cover [0, n) with alternating gaps and events; yields (code, a, b) events.

    ``events``: (code, fraction, mean_length).  Event lengths are uniform in
    [1, 2*mean-1]; gaps (left alone) uniform in [0, 2*gap_mean] so that the
    expected share of each event code is its fraction.  Adjacent events of
    different codes happen (gap 0), which exercises kind changes without a hole.
    """
    events = [e for e in events if e[1] > 0]
    if not events:
        return
    ev_fraction = sum(f for _c, f, _l in events)
    weights = [f / length for _c, f, length in events]
    mean_event = ev_fraction / sum(weights)
    gap_mean = mean_event * gap_fraction / ev_fraction
    pos = 0
    rand = rng.random
    choose = rng.choices
    while pos < n:
        pos += int(rand() * (2 * gap_mean + 1))
        if pos >= n:
            break
        code, _f, mean = choose(events, weights)[0]
        length = 1 + int(rand() * (2 * mean - 1))
        end = min(n, pos + length)
        yield code, pos, end
        pos = end


def _clamp(x: float, lo: int, hi: int) -> int:
    return int(max(lo, min(hi, x)))


def snapshot_pair(nr_chunks: int, layout: str, change_fraction: float,
                  discard_fraction: float = 0.0, grow_chunks: int = 0, seed=0,
                  base_id: int = 1, snap_id: int = 2, data_block_size: int = 128, *,
                  hole_fraction: float = 0.02, fill_fraction: float = 0.0,
                  run_length: Optional[int] = None,
                  extent_length: Optional[int] = None) -> Scenario:
    """A base snapshot and a newer snapshot of the same thin volume.

    nr_chunks: virtual size of the base in pool chunks.
    layout: "contiguous" (data allocated in long extents; changes in long runs)
        or "fragmented" (every chunk's data block shuffled, so thin_dump prints
        single mappings; changes scattered in runs of 1-3 chunks).
    change_fraction: share of the base's chunks the snapshot remaps to new data
        blocks (-> ``different``).  discard_fraction: share unmapped in the
        snapshot (-> ``left_only`` for snap1=base).  grow_chunks: chunks mapped
        in the snapshot past the base's end (-> ``right_only``).
    hole_fraction: share of chunks unmapped in the base (holes; omitted from
        thin_delta output); fill_fraction: share of those holes that the
        snapshot maps (-> ``right_only`` inside the base's range).
    run_length: mean length of change/discard runs (default: 2 fragmented,
        nr_chunks/256 clamped to 8..1024 contiguous).
    extent_length: contiguous layout only, mean length of the base's data
        extents (default nr_chunks/64 clamped to 16..4096).
    Fractions are expectations, not exact counts; ``Scenario.counts()`` has
    the exact numbers.  Deterministic for a given seed.
    """
    if layout not in LAYOUTS:
        raise ValueError("layout must be one of %s" % (LAYOUTS,))
    for name, v in (("change_fraction", change_fraction), ("discard_fraction", discard_fraction),
                    ("hole_fraction", hole_fraction), ("fill_fraction", fill_fraction)):
        if not 0.0 <= v <= 1.0:
            raise ValueError("%s must be in [0, 1]" % name)
    if change_fraction + discard_fraction > 1.0:
        raise ValueError("change_fraction + discard_fraction > 1")
    if nr_chunks < 0 or grow_chunks < 0:
        raise ValueError("negative size")
    if base_id == snap_id:
        raise ValueError("base_id == snap_id")
    rng = random.Random("%s/%s/%d/%d" % (seed, layout, nr_chunks, grow_chunks))
    n = nr_chunks
    total = n + grow_chunks
    frag = layout == "fragmented"

    # 1. base holes (some "filled" by the snapshot)
    state = bytearray(b"\x01") * n + bytearray(b"\x04") * grow_chunks
    hole_mean = 2 if frag else _clamp(n / 1024, 4, 256)
    for _code, a, b in _sweep(rng, n, 1.0 - hole_fraction, [(HOLE, hole_fraction, hole_mean)]):
        fill = fill_fraction > 0 and rng.random() < fill_fraction
        state[a:b] = (b"\x04" if fill else b"\x00") * (b - a)

    # 2. snapshot changes and discards over the base's mapped chunks
    if run_length is None:
        run_length = 2 if frag else _clamp(n / 256, 8, 1024)
    keep = 1.0 - change_fraction - discard_fraction
    for code, a, b in _sweep(rng, n, keep, [(DIFF, change_fraction, run_length),
                                            (BASE_ONLY, discard_fraction, run_length)]):
        state[a:b] = state[a:b].translate(_T_CHANGE if code == DIFF else _T_DISCARD)

    # 3. data blocks of the base: a shuffled permutation, or extents laid out in
    #    shuffled order with small gaps (holes leave their blocks free)
    base_data = array.array("I", bytes(4 * n)) if n else array.array("I")
    if frag:
        base_data = array.array("I", range(n))
        rng.shuffle(base_data)
        pos = n
    else:
        ext_mean = extent_length or _clamp(n / 64, 16, 4096)
        extents = []
        a = 0
        while a < n:
            b = min(n, a + 1 + int(rng.random() * (2 * ext_mean - 1)))
            extents.append((a, b))
            a = b
        rng.shuffle(extents)
        pos = 0
        for a, b in extents:
            pos += int(rng.random() * 9)
            base_data[a:b] = array.array("I", range(pos, pos + b - a))
            pos += b - a

    # 4. new data blocks for changed / snapshot-only chunks, after the base's
    new_data = array.array("I", bytes(4 * total)) if total else array.array("I")
    spans = [m.span() for m in _RE_NEW.finditer(state)]
    nr_new = sum(b - a for a, b in spans)
    pos += 1 + int(rng.random() * 64)
    if frag:
        perm = array.array("I", range(pos, pos + nr_new))
        rng.shuffle(perm)
        k = 0
        for a, b in spans:
            new_data[a:b] = perm[k:k + b - a]
            k += b - a
        pos += nr_new
    else:
        rng.shuffle(spans)
        for a, b in spans:
            new_data[a:b] = array.array("I", range(pos, pos + b - a))
            pos += b - a + int(rng.random() * 3)
    if pos >= 1 << 32:
        raise ValueError("pool too large for 32-bit data block numbers")

    params = dict(change_fraction=change_fraction, discard_fraction=discard_fraction,
                  hole_fraction=hole_fraction, fill_fraction=fill_fraction,
                  run_length=run_length, data_block_size=data_block_size)
    return Scenario(nr_chunks=n, grow_chunks=grow_chunks, layout=layout, seed=seed,
                    base_id=base_id, snap_id=snap_id, data_block_size=data_block_size,
                    state=state, base_data=base_data, new_data=new_data,
                    data_end=max(pos, 1), params=params)


# ----------------------------------------------------------------------------
# CLI (benchmarks)


def _iterparse(path, tags) -> Iterator:
    """Elements with a tag in ``tags``, parsed incrementally, then detached."""
    import xml.etree.ElementTree as ET
    stack = []
    for ev, el in ET.iterparse(path, events=("start", "end")):
        if ev == "start":
            stack.append(el)
            continue
        stack.pop()
        if el.tag in tags:
            yield el
        if stack:  # detach, so a long document never accumulates in memory
            stack[-1].remove(el)


def _parse_delta_file(path) -> Iterator[DeltaRun]:
    for el in _iterparse(path, KINDS):
        yield (el.tag, int(el.get("begin")), int(el.get("length")))


def _parse_dump_file(path) -> Iterator[TimedRun]:
    for el in _iterparse(path, ("single_mapping", "range_mapping")):
        if el.tag == "single_mapping":
            yield (int(el.get("origin_block")), int(el.get("data_block")), 1, int(el.get("time")))
        else:
            yield (int(el.get("origin_begin")), int(el.get("data_begin")),
                   int(el.get("length")), int(el.get("time")))


def _compare(got: Iterable, want: Iterable):
    """Stream-compare two iterables: (None, n) if equal, else (first difference, index)."""
    from itertools import zip_longest
    missing = object()
    count = 0
    for x, y in zip_longest(got, want, fillvalue=missing):
        if x != y:
            return ((None if x is missing else x), (None if y is missing else y)), count
        count += 1
    return None, count


def _peak_rss() -> str:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Unix
        return "n/a"
    return "%.0f MB" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--chunks", type=int, required=True, help="base size in pool chunks")
    ap.add_argument("--layout", choices=LAYOUTS, default="fragmented")
    ap.add_argument("--change", type=float, default=0.05, help="change fraction")
    ap.add_argument("--discard", type=float, default=0.0, help="discard fraction")
    ap.add_argument("--grow", type=int, default=0, help="chunks added past the base's end")
    ap.add_argument("--holes", type=float, default=0.02, help="hole fraction")
    ap.add_argument("--fill", type=float, default=0.0, help="fraction of holes filled by the snapshot")
    ap.add_argument("--seed", default="0")
    ap.add_argument("--data-block-size", type=int, default=128, help="in 512-byte sectors")
    ap.add_argument("--out", required=True, help="directory for pool.xml and meta.bin")
    ap.add_argument("--no-restore", action="store_true", help="only write pool.xml")
    ap.add_argument("--bench", action="store_true",
                    help="also time thin_delta and thin_dump --dev-id SNAP (output to /dev/null)")
    ap.add_argument("--check", action="store_true",
                    help="compare thin_delta (both orders) and thin_dump --dev-id N with the truth")
    ap.add_argument("--rm-xml", action="store_true",
                    help="delete pool.xml once meta.bin is restored (and checked)")
    args = ap.parse_args(argv)

    os.makedirs(args.out, exist_ok=True)
    xml_path = os.path.join(args.out, "pool.xml")
    meta_path = os.path.join(args.out, "meta.bin")

    def say(msg):
        print(msg, flush=True)

    t0 = time.monotonic()
    sc = snapshot_pair(args.chunks, args.layout, args.change, args.discard, args.grow,
                       seed=args.seed, data_block_size=args.data_block_size,
                       hole_fraction=args.holes, fill_fraction=args.fill)
    t_gen = time.monotonic() - t0
    say("model:       %.2f s  %s" % (t_gen, sc.counts()))
    t0 = time.monotonic()
    size = sc.write_xml(xml_path)
    t_xml = time.monotonic() - t0
    say("write_xml:   %.2f s  %s  %.1f MB  (generator peak RSS %s)"
        % (t_xml, xml_path, size / 1e6, _peak_rss()))
    if args.no_restore:
        return 0
    t_restore = sc.restore(xml_path, meta_path)
    st = os.stat(meta_path)
    say("thin_restore: %.2f s  %s  (file %.0f MB, %.0f MB allocated)"
        % (t_restore, meta_path, st.st_size / 1e6, st.st_blocks * 512 / 1e6))
    if args.bench:
        for name, cmd in (
            ("thin_delta", [find_tool("thin_delta"), "--snap1", str(sc.base_id),
                            "--snap2", str(sc.snap_id), meta_path]),
            ("thin_dump --dev-id %d" % sc.snap_id,
             [find_tool("thin_dump"), "--dev-id", str(sc.snap_id), meta_path]),
        ):
            t0 = time.monotonic()
            with open(os.devnull, "wb") as null:
                subprocess.run(cmd, stdout=null, check=True)
            say("%-22s %.2f s" % (name + ":", time.monotonic() - t0))
    status = 0
    if args.check:
        out = os.path.join(args.out, "tool-out.xml")
        checks = [
            ("delta %d->%d" % (sc.base_id, sc.snap_id),
             ["thin_delta", "--snap1", str(sc.base_id), "--snap2", str(sc.snap_id)],
             _parse_delta_file, lambda: sc.iter_delta(sc.base_id, sc.snap_id)),
            ("delta %d->%d" % (sc.snap_id, sc.base_id),
             ["thin_delta", "--snap1", str(sc.snap_id), "--snap2", str(sc.base_id)],
             _parse_delta_file, lambda: sc.iter_delta(sc.snap_id, sc.base_id)),
        ] + [("dump --dev-id %d" % d, ["thin_dump", "--dev-id", str(d)], _parse_dump_file,
              (lambda d=d: sc.dump_runs(d))) for d in (sc.base_id, sc.snap_id)]
        for label, cmd, parse, truth in checks:
            t0 = time.monotonic()
            with open(out, "wb") as f:
                subprocess.run([find_tool(cmd[0])] + cmd[1:] + [meta_path], stdout=f, check=True)
            diff, n = _compare(parse(out), truth())
            say("check %-18s %s (%d runs, %.1f s)" % (label, "MISMATCH" if diff else "OK", n,
                                                      time.monotonic() - t0))
            if diff:
                status = 1
                say("  first difference at run %d (tool, truth): %r" % (n, diff))
        os.unlink(out)
    if args.rm_xml:
        os.unlink(xml_path)
    return status


if __name__ == "__main__":
    sys.exit(main())

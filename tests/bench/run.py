#!/usr/bin/env python3
"""Benchmarks of lvdiff.thin's hot paths, each a ratio against a floor measured in the same run.

    make bench          # full sizes (about 15 min); writes tests/output/bench/results.md
    make bench-smoke    # every benchmark at tiny sizes (under 30 s); fails only on errors
    .venv/bin/python tests/bench/run.py [--smoke] [--runs N] [--only meta|data|fmt2]
                                        [--filter TEXT] [--no-baseline] [--out FILE]

Method: every measured operation runs in a fresh Python child (tests/bench/child.py)
that times only the operation and reports its own peak RSS (VmHWM). Floors are the
plain tools/pipelines doing the same work: thin_delta / thin_dump alone to /dev/null,
cat | tee | sha1sum of the diff's bytes, and for the data path also a tight floor
(one process, 4 MiB blocks, hashlib SHA-1 on a second thread). A thin tool's own
peak RSS comes from GNU time on one extra floor run. Each row runs a warm-up of
floor and ours (discarded; it also fills the page cache: all runs are warm), then N
interleaved pairs floor/ours, with dirty pages written out (sync) before each timed
data run; the ratio is the median of the N per-pair ratios, seconds are medians.
Format 2 (7-10) runs on realistic volumes (tests/bench/realdata.py: ext4 of a /usr copy,
a SQLite database; full images and incrementals): write_diff compressed (zstd level 3)
against `cat changed | zstd -3 -T1 | tee out | sha1sum` of the same changed bytes, with
the file sizes; encrypted against the same write_diff unencrypted (pairs ours/ours);
apply_file of each kind against the plain diff's; peak RSS of each at two volume sizes.
Every diff is applied once and checked against the source before it is timed.
Timings are reported, never asserted: only errors and wrong results fail.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import hashlib
import os
import shutil
import subprocess
import sys
import time

import _common
from _common import MiB, GiB, median, fmt_s, fmt_mib, run_child, run_pipeline
import data as datamod
import pools

RSS_LIMIT_MIB = 64


class Row:
    def __init__(self, group, case, what, target=None, notes=''):
        self.group, self.case, self.what, self.target, self.notes = group, case, what, target, notes
        self.ours, self.floor, self.ratios = [], [], []
        self.tight = []        # seconds of the tight floor (data path)
        self.rss = []          # KiB, our process
        self.tool_rss = None   # KiB, the thin tool's own process
        self.floor_label = ''
        self.cpu_ratios = []   # our CPU seconds / the floor's, where both are known

    def add(self, ours, floor_s, tight_s=None, floor_cpu=None):
        if tight_s is not None:
            self.tight.append(tight_s)
        if floor_cpu:
            self.cpu_ratios.append(ours['cpu'] / floor_cpu)
        self.ours.append(ours['seconds'])
        self.floor.append(floor_s)
        self.ratios.append(ours['seconds'] / floor_s)
        self.rss.append(ours['rss_kib'])
        self.last = ours

    @property
    def ratio(self):
        return median(self.ratios)

    @property
    def cpu_ratio(self):
        return median(self.cpu_ratios)

    @property
    def tight_ratio(self):
        return median([o / t for o, t in zip(self.ours, self.tight)])

    @property
    def peak_rss(self):
        return max(self.rss) if self.rss else None

    def met(self):
        if self.target is None:
            return ''
        return 'met' if self.ratio <= self.target else 'MISSED'


class Bench:
    def __init__(self, args):
        self.args = args
        self.smoke = args.smoke
        self.runs = args.runs or (1 if self.smoke else 5)
        self.go_runs = min(self.runs, 3)
        self.rows = []
        self.rss_checks = []  # (label, {case: kib})
        self.fmt2_sizes = []  # (case, changed bytes, zstd's size, ours, ours encrypted, plain, plain encrypted)
        self.fmt2_rss = {}  # (case, variant, 'write_diff'|'apply_file') -> [KiB, one per child]
        self.fmt2_rss_base = None  # KiB: a child that only imports
        self.fmt2_targets = []  # (label, measured, met)
        self.t_start = time.monotonic()
        self.load_start = os.getloadavg()
        self.work = os.path.join(_common.OUTPUT, 'data-smoke' if self.smoke else 'data')
        if self.smoke:
            _common.SETTLE = 0.02

    def wanted(self, case):
        return not self.args.filter or self.args.filter in case

    def log(self, msg):
        print('[%6.1f s] %s' % (time.monotonic() - self.t_start, msg), file=sys.stderr, flush=True)

    def row(self, *a, **kw):
        r = Row(*a, **kw)
        self.rows.append(r)
        return r

    # --- 1, 2, 6: metadata -----------------------------------------------------------

    def pool_cases(self):
        if self.smoke:
            return [(8192, 'fragmented'), (8192, 'contiguous'), (32768, 'fragmented'), (32768, 'contiguous')]
        return [(1 << 20, 'fragmented'), (1 << 20, 'contiguous'), (4 << 20, 'fragmented'), (4 << 20, 'contiguous')]

    def bench_meta(self):
        delta_rss, dump_rss = {}, {}
        for nr_chunks, layout in self.pool_cases():
            case = '%s %s' % (_chunks(nr_chunks), layout)
            if not self.wanted(case):
                continue
            meta, info = pools.get(nr_chunks, layout, log=self.log)
            truth = info['truth']
            args = dict(meta=meta, nr_chunks=nr_chunks, chunk_size=info['chunk_size'],
                        base_id=info['base_id'], snap_id=info['snap_id'])
            thin_delta = [_common.find_tool('thin_delta'), '--snap1', str(info['base_id']),
                          '--snap2', str(info['snap_id']), meta]
            thin_dump = [_common.find_tool('thin_dump'), '--dev-id', str(info['snap_id']), meta]
            _common.preread(meta)

            def check_delta(res, per_chunk=False):
                got = (res['data_chunks'], res['discard_chunks'])
                want = (truth['delta_data_chunks'], truth['delta_discard_chunks'])
                if got != want:
                    raise AssertionError('%s: plan from thin_delta has (data, discard) chunks %r, the pool '
                                         'has %r (stale cache? rm -rf %s)' % (case, got, want, pools.POOLS))

            def check_dump(res, per_chunk=False):
                # a per-chunk plan has one extent per chunk
                got = (res['data_chunks'], res['extents'])
                want = (truth['dump_chunks'], truth['dump_chunks'] if per_chunk else truth['dump_runs'])
                if got != want:
                    raise AssertionError('%s: plan from thin_dump has (chunks, extents) %r, the pool has %r'
                                         % (case, got, want))

            for kind, floor_cmd, op, check, group, target, rss_map in (
                    ('delta', thin_delta, 'delta', check_delta,
                     '1. incremental metadata: thin_delta -> Plan.add_delta', 1.5, delta_rss),
                    ('dump', thin_dump, 'dump', check_dump,
                     '2. full-image metadata: thin_dump --dev-id 2 -> Plan.add_mapped', 2.0, dump_rss)):
                self.log('%s: %s' % (case, kind))
                floor_label = ('thin_delta' if kind == 'delta' else 'thin_dump --dev-id 2') + ' > /dev/null'
                ours = self.row(group, case, 'ours', target)
                go = self.row('6. baseline: the Go tool\'s approach in our code path', case,
                              '%s: buffered, tree, per-chunk' % kind)
                # warm-up (discarded)
                run_pipeline([floor_cmd])
                check(run_child(op, **args))
                for i in range(self.runs):
                    fs = run_pipeline([floor_cmd])
                    res = run_child(op, **args)
                    check(res)
                    ours.add(res, fs)
                    if i < self.go_runs and not self.args.no_baseline:
                        fs = run_pipeline([floor_cmd])
                        res = run_child(op + '_go', **args)
                        check(res, per_chunk=True)
                        go.add(res, fs)
                ours.tool_rss = go.tool_rss = _common.tool_peak_rss(floor_cmd)
                ours.notes = '%s %s -> %s plan extents' % (
                    _int(truth['delta_runs'] if kind == 'delta' else truth['dump_records']),
                    'thin_delta ranges' if kind == 'delta' else 'thin_dump mappings', _int(ours.last['extents']))
                ours.floor_label = go.floor_label = floor_label
                if go.ours:
                    go.notes = 'vs ours: %.1fx the time, %.1fx the memory' % (
                        median(go.ours) / median(ours.ours), go.peak_rss / ours.peak_rss)
                rss_map[case] = ours.peak_rss
        self.rss_checks = [('thin_delta parse', delta_rss), ('thin_dump parse', dump_rss)]

    # --- 3, 4, 5, 6: data path ---------------------------------------------------------

    def data_cases(self):
        """(size, chunk size, fraction, mean run, rows): rows among main/go/scale."""
        v = 256 * MiB if self.smoke else 4 * GiB
        return [
            (v, 64 << 10, 0.05, 4, ('main', 'go')),
            (v, 1 << 20, 0.05, 2, ('main',)),
            (v, 64 << 10, 0.01, 4, ('scale',)),
            (v, 64 << 10, 0.25, 4, ('scale',)),
            (4 * v, 64 << 10, 0.0125, 4, ('scale',)),
        ]

    def bench_data(self):
        shutil.rmtree(self.work, ignore_errors=True)
        try:
            for size, cs, fraction, mean_run, kinds in self.data_cases():
                sc = datamod.Scenario(self.work, size, cs, fraction, mean_run)
                if not self.wanted(sc.label):
                    continue
                if self.args.no_baseline:
                    kinds = tuple(k for k in kinds if k != 'go')
                self.log('data: %s (%.0f MiB changed): building' % (sc.label, sc.changed_bytes / MiB))
                sc.build()
                try:
                    self._data_case(sc, kinds)
                finally:
                    sc.remove()
        finally:
            shutil.rmtree(self.work, ignore_errors=True)

    def _tight_floor(self, payload, want_sha1):
        """Read, hash and write payload's bytes in place into an allocated file of that size.

        In place, as apply writes into its target (a copy of the base). For write_diff, which
        writes a new file, this floor is stricter than ours; it is also steadier: new-file
        writes here stall now and then for a few hundred ms (ext4 with online discard on a
        virtual disk, the freed extents of the previous run's files)."""
        out = os.path.join(self.work, 'floor-inplace.out')
        if not os.path.exists(out) or os.path.getsize(out) != os.path.getsize(payload):
            shutil.copyfile(payload, out)
        _common.drop_writeback()
        res = run_child('floor_copy', payload=payload, out=out, overwrite=True)
        if res['sha1'] != want_sha1:
            raise AssertionError('tight floor: sha1 of %s is %s, write_diff said %s'
                                 % (payload, res['sha1'], want_sha1))
        return res['seconds']

    def _floor(self, payload, want_sha1):
        """cat payload | tee out | sha1sum: read, hash and write the same bytes."""
        out = os.path.join(self.work, 'floor.out')
        _common.remove(out)
        _common.drop_writeback()
        sha_out = os.path.join(self.work, 'floor.sha1')
        with open(sha_out, 'wb') as f:
            secs = run_pipeline([['cat', payload], ['tee', out], ['sha1sum']], stdout=f)
        with open(sha_out) as f:
            got = f.read().split()[0]
        if got != want_sha1:
            raise AssertionError('floor: sha1sum of %s is %s, write_diff said %s' % (payload, got, want_sha1))
        _common.remove(out, sha_out)
        return secs

    def _data_case(self, sc, kinds):
        w = self.work
        case = sc.label
        common = dict(src=sc.src, base=sc.base, runs=sc.runs_path, chunk_size=sc.chunk_size, size=sc.size,
                      level=2)
        changed = '%.0f MiB changed (%.2f%%)' % (sc.changed_bytes / MiB, 100.0 * sc.changed_chunks / sc.nr_chunks)
        target = os.path.join(w, 'target.img')

        def write_rows(op, diff, group, label, tgt):
            # warm-up: writes the diff that the floor and apply read
            first = run_child(op, out=diff, **common)
            with open(diff, 'rb') as f:
                h = hashlib.sha1()
                for block in iter(lambda: f.read(8 * MiB), b''):
                    h.update(block)
            if h.hexdigest() != first['sha1'] or os.path.getsize(diff) != first['size']:
                raise AssertionError('%s: write_diff returned a wrong sha1 or size' % case)
            for p in (sc.src, sc.base, diff):
                _common.preread(p)
            self._floor(diff, first['sha1'])
            self._tight_floor(diff, first['sha1'])
            row = self.row(group, case, label, tgt, '%s, %s records' % (changed, _int(first['extents'])))
            row.floor_label = 'cat diff | tee out | sha1sum'
            out = os.path.join(w, 'out.diff')
            for i in range(self.go_runs if op.endswith('_go') else self.runs):
                fs = self._floor(diff, first['sha1'])
                ts = self._tight_floor(diff, first['sha1'])
                _common.remove(out)
                _common.drop_writeback()
                res = run_child(op, out=out, **common)
                if res['sha1'] != first['sha1']:
                    raise AssertionError('%s: write_diff is not deterministic' % case)
                row.add(res, fs, ts)
            _common.remove(out)
            row.notes += ', %.0f MiB/s' % (sc.changed_bytes / MiB / median(row.ours))
            return row, first

        def apply_rows(op, diff, sha1, group, label, tgt, verify_first=False, runs=None):
            def fresh_target():
                _common.remove(target)
                subprocess.run(['cp', '--sparse=always', sc.base, target], check=True)
                _common.drop_writeback()

            fresh_target()
            self._tight_floor(diff, sha1)
            res = run_child(op, diff=diff, target=target, verify_first=verify_first)
            if res['sha1'] != sha1 or not sc.same_as_source(target):
                raise AssertionError('%s: apply_file did not restore the source' % case)
            row = self.row(group, case, label, tgt, changed)
            row.floor_label = 'cat diff | tee out | sha1sum'
            for i in range(runs or self.runs):
                fs = self._floor(diff, sha1)
                ts = self._tight_floor(diff, sha1)
                fresh_target()
                row.add(run_child(op, diff=diff, target=target, verify_first=verify_first), fs, ts)
            _common.remove(target)
            row.notes += ', %.0f MiB/s' % (sc.changed_bytes / MiB / median(row.ours))
            return row

        diff = os.path.join(w, 'diff.lvdiff')
        scale_group = '5. scaling: write_diff, cost per changed byte'
        if 'main' in kinds:
            self.log('data: %s: write_diff' % case)
            wr, first = write_rows('write', diff, '3. lvdiff data path: write_diff, level 2, SHA-1', 'ours', 1.25)
            if 'scale' in kinds:
                self.rows.append(_regroup(wr, scale_group))
            self.log('data: %s: apply_file' % case)
            group = '4. lvpatch data path: apply_file'
            ap = apply_rows('apply', diff, first['sha1'], group, 'ours, verify_first=False', 1.25)
            apply_rows('apply', diff, first['sha1'], group, 'verify_first=True (reads the diff twice)', None,
                       verify_first=True)
        elif 'scale' in kinds:
            self.log('data: %s: write_diff (scaling)' % case)
            write_rows('write', diff, scale_group, 'ours', 1.25)
        if 'go' in kinds:
            self.log('data: %s: Go-style per-chunk baseline' % case)
            group = "6. baseline: the Go tool's approach in our code path"
            diff_go = os.path.join(w, 'diff-go.lvdiff')
            gw, gfirst = write_rows('write_go', diff_go, group, 'write: one record + syscall per chunk', None)
            gw.notes += '; vs ours: %.1fx the time' % (median(gw.ours) / median(wr.ours))
            ga = apply_rows('apply_go', diff_go, gfirst['sha1'], group, 'apply: one record + pwrite per chunk',
                            None, runs=self.go_runs)
            ga.notes += '; vs ours: %.1fx the time' % (median(ga.ours) / median(ap.ours))
            _common.remove(diff_go)
        _common.remove(diff)

    # --- 7-10: format 2 (compressed, encrypted) on realistic volumes -------------------

    FMT2_GROUPS = ('7. format 2: write_diff compress zstd level 3 vs the zstd pipe',
                   '8. format 2: write_diff encrypted (AES-256-GCM) vs the same unencrypted',
                   '9. format 2: apply_file (lvpatch path) of compressed / encrypted vs plain',
                   '10. format 2: peak RSS at three volume sizes')
    FMT2_VARIANTS = (('plain', None, False), ('zstd', 3, False), ('encrypted', None, True),
                     ('zstd + encrypted', 3, True))

    def fmt2_cases(self):
        """((kind, size, incremental) of the timed cases, (kind, size) of the RSS check's full images)."""
        if self.smoke:  # a few seconds once the volumes are cached
            return [('sqlite', 2 * MiB, True)], [('ext4', 16 * MiB)]
        return ([('ext4', 256 * MiB, False), ('ext4', 256 * MiB, True), ('sqlite', 64 * MiB, False),
                 ('sqlite', 64 * MiB, True)], [('ext4', 256 * MiB), ('ext4', GiB), ('ext4', 2 * GiB)])

    def bench_fmt2(self):
        import realdata
        work = self.work + '-fmt2'
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        key_file = os.path.join(work, 'bench.key')
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, os.urandom(32))
        os.close(fd)
        cases, rss_sizes = self.fmt2_cases()
        try:
            for kind, size, incremental in cases:
                vol = realdata.Volume(work, kind, size, incremental, log=self.log)
                if self.wanted(vol.label):
                    self._fmt2_case(vol, key_file)
            self.fmt2_rss_base = run_child('noop')['rss_kib']
            for kind, size in rss_sizes:
                vol = realdata.Volume(work, kind, size, False, log=self.log)
                if self.wanted(vol.label):
                    self._fmt2_rss(vol, key_file)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _fmt2_write(self, vol, diff, level, key_file):
        args = dict(src=vol.src, base=vol.base, runs=vol.runs_path, chunk_size=vol.chunk_size, size=vol.size,
                    level=2, full=not vol.incremental, out=diff)
        if level is not None:
            args['compress_level'] = level
        if key_file:
            args['key_file'] = key_file
        _common.remove(diff)
        _common.drop_writeback()
        res = run_child('write', **args)
        if os.path.getsize(diff) != res['size']:
            raise AssertionError('%s: write_diff returned a wrong size' % vol.label)
        return res

    def _fmt2_apply(self, vol, diff, key_file, target, check=False):
        _common.remove(target)
        if vol.base:
            subprocess.run(['cp', '--sparse=always', vol.base, target], check=True)
        else:
            with open(target, 'wb') as f:
                f.truncate(vol.size)
        _common.drop_writeback()
        res = run_child('apply', diff=diff, target=target, verify_first=False, key_file=key_file)
        if check and not vol.same_as_source(target):
            raise AssertionError('%s: apply_file of %s did not restore the source' % (vol.label, diff))
        return res

    def _zstd_floor(self, vol, out, want_sha1=None):
        """cat changed | zstd -3 -T1 | tee out | sha1sum: (seconds, size of out, sha1 of out)."""
        _common.remove(out)
        _common.drop_writeback()
        sha_out = out + '.sha1'
        with open(sha_out, 'wb') as f:
            secs = run_pipeline([['cat', vol.changed_path], ['zstd', '-q', '-3', '-T1'], ['tee', out], ['sha1sum']],
                                stdout=f)
        with open(sha_out) as f:
            sha1 = f.read().split()[0]
        _common.remove(sha_out)
        self._zstd_floor_cpu = _common.LAST_PIPELINE_CPU[0]
        if want_sha1 is not None and sha1 != want_sha1:
            raise AssertionError('zstd floor: its output changed between runs (%s, then %s)' % (want_sha1, sha1))
        return secs, os.path.getsize(out), sha1

    def _fmt2_case(self, vol, key_file):
        w = vol.dir
        case = vol.label
        self.log('format 2: %s (%.0f MiB in %d runs): preparing' % (case, vol.changed_bytes / MiB, len(vol.runs)))
        changed_sha1 = vol.prepare()
        target = os.path.join(w, 'target.img')
        zout = os.path.join(w, 'floor.zst')
        diffs = dict((variant[0], os.path.join(w, 'diff-%d.lvdiff' % i))
                     for i, variant in enumerate(self.FMT2_VARIANTS))
        try:
            # warm-up (discarded): every diff written once, checked by applying it, and the zstd floor checked
            for p in (vol.src, vol.base, vol.changed_path):
                if p:
                    _common.preread(p)
            dummy, zsize, zsha1 = self._zstd_floor(vol, zout)
            back = subprocess.run(['zstd', '-q', '-d', '-c', zout], stdout=subprocess.PIPE, check=True).stdout
            if hashlib.sha1(back).hexdigest() != changed_sha1:
                raise AssertionError('zstd floor: its output does not decompress to the changed bytes')
            del back
            first = {}
            for name, level, enc in self.FMT2_VARIANTS:
                first[name] = self._fmt2_write(vol, diffs[name], level, key_file if enc else None)
                self._fmt2_apply(vol, diffs[name], key_file if enc else None, target, check=True)
            plain = first['plain']
            if plain['stored_data_bytes'] != vol.changed_bytes or plain['data_bytes'] != vol.changed_bytes:
                raise AssertionError('%s: the diff holds %d data bytes, the volume changed %d'
                                     % (case, plain['data_bytes'], vol.changed_bytes))
            changed = '%.1f MiB changed in %d runs' % (vol.changed_bytes / MiB, len(vol.runs))
            g7, g8, g9 = self.FMT2_GROUPS[:3]
            zrow = self.row(g7, case, 'zstd', 1.25)
            zrow.floor_label = 'cat changed | zstd -3 -T1 | tee out | sha1sum'
            erow = self.row(g8, case, 'encrypted vs plain', 1.30)
            erow.floor_label = 'write_diff, the same diff unencrypted'
            zerow = self.row(g8, case, 'zstd + encrypted vs zstd', 1.30)
            zerow.floor_label = erow.floor_label
            self.log('format 2: %s: write_diff, %d runs' % (case, self.runs))
            for i in range(self.runs):
                fs, dummy, dummy = self._zstd_floor(vol, zout, zsha1)
                rz = self._fmt2_write(vol, diffs['zstd'], 3, None)
                if rz['sha1'] != first['zstd']['sha1']:
                    raise AssertionError('%s: compressed write_diff is not deterministic' % case)
                zrow.add(rz, fs, floor_cpu=self._zstd_floor_cpu)
                rze = self._fmt2_write(vol, diffs['zstd + encrypted'], 3, key_file)
                zerow.add(rze, rz['seconds'], floor_cpu=rz['cpu'])
                rp = self._fmt2_write(vol, diffs['plain'], None, None)
                re_ = self._fmt2_write(vol, diffs['encrypted'], None, key_file)
                erow.add(re_, rp['seconds'], floor_cpu=rp['cpu'])
            _common.remove(zout)
            zs = first['zstd']
            size_ratio = zs['size'] / zsize
            self.fmt2_sizes.append((case, vol.changed_bytes, zsize, zs['size'], first['zstd + encrypted']['size'],
                                    plain['size'], first['encrypted']['size']))
            zrow.notes = 'CPU %.2fx; %s; zstd %.2f:1, ours %.2f:1 (file %.2f:1): size **%.3fx** zstd\'s; %.0f MiB/s' % (
                zrow.cpu_ratio, changed, vol.changed_bytes / zsize, vol.changed_bytes / zs['stored_data_bytes'],
                vol.changed_bytes / zs['size'], size_ratio, vol.changed_bytes / MiB / median(zrow.ours))
            erow.notes = 'CPU %.2fx; ' % erow.cpu_ratio + '%s; %.0f MiB/s (plain %.0f MiB/s)' % (
                changed, vol.changed_bytes / MiB / median(erow.ours), vol.changed_bytes / MiB / median(erow.floor))
            zerow.notes = 'CPU %.2fx; ' % zerow.cpu_ratio + '%.0f MiB/s (zstd %.0f MiB/s)' % (
                vol.changed_bytes / MiB / median(zerow.ours), vol.changed_bytes / MiB / median(zerow.floor))
            self.fmt2_targets.append(('7. %s: compressed file size <= 1.02x zstd -3 -T1\'s' % case,
                                      '%.3fx' % size_ratio, size_ratio <= 1.02))
            self.log('format 2: %s: apply_file, %d runs' % (case, self.runs))
            arows = {}
            for name, level, enc in self.FMT2_VARIANTS[1:]:
                arows[name] = self.row(g9, case, '%s vs plain' % name)
                arows[name].floor_label = 'apply_file of the plain diff (verify_first=False)'
            for i in range(self.runs):
                ap = self._fmt2_apply(vol, diffs['plain'], None, target)
                for name, level, enc in self.FMT2_VARIANTS[1:]:
                    arows[name].add(self._fmt2_apply(vol, diffs[name], key_file if enc else None, target),
                                    ap['seconds'], floor_cpu=ap['cpu'])
            for name, row in arows.items():
                mib = vol.changed_bytes / MiB
                row.notes = 'CPU %.2fx; %.0f MiB/s (plain %.0f MiB/s)' % (
                    row.cpu_ratio, mib / median(row.ours), mib / median(row.floor))
        finally:
            for p in list(diffs.values()) + [target, zout]:
                _common.remove(p)
            vol.remove()

    RSS_RUNS = 3

    def _fmt2_rss(self, vol, key_file):
        """RSS_RUNS writes and applies of each variant of a full image: their peak RSS."""
        self.log('format 2: %s: peak RSS of each variant' % vol.label)
        vol.prepare()
        diff = os.path.join(vol.dir, 'diff.lvdiff')
        target = os.path.join(vol.dir, 'target.img')
        try:
            # VmHWM of one child varies by a few MiB from run to run (when the reader thread's buffers and
            # zstd's contexts happen to be live at once), so each value is the median of RSS_RUNS children.
            for name, level, enc in self.FMT2_VARIANTS:
                k = key_file if enc else None
                for dummy in range(self.RSS_RUNS):
                    self.fmt2_rss.setdefault((vol.label, name, 'write_diff'), []).append(
                        self._fmt2_write(vol, diff, level, k)['rss_kib'])
                    self.fmt2_rss.setdefault((vol.label, name, 'apply_file'), []).append(
                        self._fmt2_apply(vol, diff, k, target, check=True)['rss_kib'])
        finally:
            for p in (diff, target):
                _common.remove(p)
            vol.remove()

    def report_fmt2(self, add):
        if self.fmt2_sizes:
            add('### Format 2: sizes')
            add('')
            add('| case | changed bytes | zstd -3 -T1 | lvdiff zstd | vs zstd | zstd + encrypted | lvdiff plain '
                '| encrypted |')
            add('|---|---:|---:|---:|---:|---:|---:|---:|')
            for case, changed, zsize, ours, ours_enc, plain, enc in self.fmt2_sizes:
                add('| %s | %s | %s (%.2f:1) | %s (%.2f:1) | %.3fx | %s | %s | %s |' % (
                    case, _int(changed), _int(zsize), changed / zsize, _int(ours), changed / ours, ours / zsize,
                    _int(ours_enc), _int(plain), _int(enc)))
            add('')
        if self.fmt2_rss:
            sizes = []
            for label, dummy, dummy in self.fmt2_rss:
                if label not in sizes:
                    sizes.append(label)
            add('## %s' % self.FMT2_GROUPS[3])
            add('')
            add('%d write_diff and %d apply_file children of each variant of a full image (a fresh Python child '
                'each: VmHWM, interpreter and imports included; a child that only imports peaks at %s MiB). Each '
                'value is the median of its children, with their spread (max - min).'
                % (self.RSS_RUNS, self.RSS_RUNS, fmt_mib(self.fmt2_rss_base)))
            add('')
            add('The buffer pools of the writer and the reader hold at most 4 buffers of 4 MiB, each made only when '
                'the others are still busy: whether a run reaches that bound depends on timing, not on the size. '
                'Memory is flat when the largest volume\'s median is at most 2 MiB above the highest median of the '
                'smaller ones ("growth").')
            add('')
            add('| operation | variant | %s | growth MiB |' % ' | '.join('%s MiB (spread)' % s for s in sizes))
            add('|---|---|%s---:|' % ('---:|' * len(sizes)))
            med = dict((key, median(vals)) for key, vals in self.fmt2_rss.items())

            def growth(name, op):  # MiB: the largest size against the highest of the smaller ones
                return (med.get((sizes[-1], name, op), 0)
                        - max(med.get((s, name, op), 0) for s in sizes[:-1] or sizes)) / 1024

            for op in ('write_diff', 'apply_file'):
                for name, dummy, dummy in self.FMT2_VARIANTS:
                    cells = []
                    for s in sizes:
                        vals = self.fmt2_rss.get((s, name, op)) or [0]
                        cells.append('%s (%.1f)' % (fmt_mib(median(vals)), (max(vals) - min(vals)) / 1024))
                    grow = growth(name, op)
                    add('| %s | %s | %s | %+.1f |' % (op, name, ' | '.join(cells), grow))
            add('')
            peak = max(max(vals) for vals in self.fmt2_rss.values())
            self.fmt2_targets.append(('10. format 2: peak RSS of every write_diff and apply_file <= %d MiB'
                                      % RSS_LIMIT_MIB, 'max %.1f MiB' % (peak / 1024), peak <= RSS_LIMIT_MIB * 1024))
            if len(sizes) > 1:
                grow = max(growth(n, op) for dummy, n, op in self.fmt2_rss)
                self.fmt2_targets.append(('10. format 2: RSS flat up to %s (its median <= 2 MiB above the highest '
                                          'median of the smaller sizes)' % sizes[-1], '%+.1f MiB' % grow, grow <= 2))

    # --- report ------------------------------------------------------------------------

    def report(self):
        lines = []
        add = lines.append
        add('# lvdiff.thin benchmarks%s' % (' (smoke sizes: not meaningful)' if self.smoke else ''))
        add('')
        add('Measured %s UTC by `%s`, %d timed runs per row (%d for the Go-style baselines), '
            'warm page cache.' % (datetime.datetime.utcnow().strftime('%Y-%m-%d %H:%M'),
                                  'make bench-smoke' if self.smoke else 'make bench', self.runs, self.go_runs))
        add('')
        add('| machine | |')
        add('|---|---|')
        for k, v in _common.machine():
            add('| %s | %s |' % (k, v))
        add('| load average (1, 5, 15 min) at start / end | %s / %s |' % (
            ' '.join('%.2f' % x for x in self.load_start), ' '.join('%.2f' % x for x in os.getloadavg())))
        add('| wall time of the run | %.0f s |' % (time.monotonic() - self.t_start))
        add('')
        add('**ratio** = our time / the floor\'s time, median of the per-run pairs (floor and ours '
            'measured back to back); **s** = median seconds. **RSS** = peak resident memory of our '
            'process (VmHWM of a fresh Python child that does only this, interpreter and imports '
            'included, the thin tool it runs not included); **tool RSS** = the thin tool\'s own peak '
            '(GNU time on one extra floor run).')
        add('')
        groups = sorted(set(r.group for r in self.rows), key=lambda g: int(g.split('.')[0]))
        for g in groups:
            add('## %s' % g)
            add('')
            rows = [r for r in self.rows if r.group == g and r.ours]
            floors = sorted(set(getattr(r, 'floor_label', '') for r in rows))
            add('Floor: %s.' % '; '.join('`%s`' % f for f in floors))
            if any(r.tight for r in rows):
                add('Tight floor: one process reading the diff file in 4 MiB blocks, writing them in place '
                    'into an allocated file of that size (no block allocation, as apply writes into its copy '
                    'of the base; stricter than write_diff, which writes a new file) and hashing them with '
                    'SHA-1 (hashlib, OpenSSL) on a second thread: no framing, no CRC, no extents.')
            add('')
            tools = any(r.tool_rss for r in rows)
            tight = any(r.tight for r in rows)
            add('| case | variant | ours s | floor s | ratio | target |%s RSS MiB |%s notes |'
                % (' tight floor s | vs tight |' if tight else '', ' tool RSS MiB |' if tools else ''))
            add('|---|---|---:|---:|---:|---|%s---:|%s---|'
                % ('---:|---:|' if tight else '', '---:|' if tools else ''))
            for r in rows:
                add('| %s | %s | %s | %s | **%.2fx** | %s |%s %s |%s %s |' % (
                    r.case, r.what, fmt_s(median(r.ours)), fmt_s(median(r.floor)), r.ratio,
                    ('<= %gx: %s' % (r.target, r.met())) if r.target else '-',
                    ((' %s | %.2fx |' % (fmt_s(median(r.tight)), r.tight_ratio)) if r.tight else ' - | - |')
                    if tight else '',
                    fmt_mib(r.peak_rss), (' %s |' % (fmt_mib(r.tool_rss) if r.tool_rss else '-')) if tools else '',
                    r.notes))
            add('')
        self.report_fmt2(add)
        add('## Targets')
        add('')
        add('| target | measured | result |')
        add('|---|---|---|')
        seen = set()
        for r in self.rows:
            if r.target is not None and r.ours and id(r.ours) not in seen:
                seen.add(id(r.ours))
                add('| %s, %s: time <= %gx floor | %.2fx | %s |'
                    % (r.group.split(':')[0], r.case, r.target, r.ratio, r.met()))
        for label, rss in self.rss_checks:
            if not rss:
                continue
            peak = max(rss.values())
            add('| %s: peak RSS <= %d MiB | max %.1f MiB | %s |' % (
                label, RSS_LIMIT_MIB, peak / 1024, 'met' if peak <= RSS_LIMIT_MIB * 1024 else 'MISSED'))
            small = [v for k, v in rss.items() if k.startswith(self._small_prefix())]
            big = [v for k, v in rss.items() if not k.startswith(self._small_prefix())]
            if small and big:
                grow = (max(big) - max(small)) / 1024
                add('| %s: RSS flat from %s to %s pools (growth <= 2 MiB) | %+.1f MiB | %s |' % (
                    label, self._small_prefix().strip(), _chunks(self.pool_cases()[-1][0]), grow,
                    'met' if grow <= 2 else 'MISSED'))
        for label, measured, met in self.fmt2_targets:
            add('| %s | %s | %s |' % (label, measured, 'met' if met else 'MISSED'))
        add('')
        return '\n'.join(lines) + '\n'

    def _small_prefix(self):
        return _chunks(self.pool_cases()[0][0]) + ' '


def _regroup(row, group):
    """The same measurements listed again under another group."""
    r = copy.copy(row)
    r.group = group
    return r


def _chunks(n):
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return '%dM chunks' % (n >> 20)
    if n % 1024 == 0:
        return '%dk chunks' % (n >> 10)
    return '%d chunks' % n


def _int(n):
    return '{:,}'.format(n).replace(',', ' ')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    ap.add_argument('--smoke', action='store_true', help='tiny sizes, one run: checks that everything works')
    ap.add_argument('--runs', type=int, help='timed runs per row (default 5, smoke 1)')
    ap.add_argument('--only', choices=('meta', 'data', 'fmt2'), help='run only one part')
    ap.add_argument('--out', help='also write the Markdown table to this file')
    ap.add_argument('--filter', help='only cases whose label contains this, e.g. "4M chunks frag" or "1 MiB chunks"')
    ap.add_argument('--no-baseline', action='store_true', help="skip the Go tool's approach (section 6)")
    args = ap.parse_args()
    os.makedirs(_common.OUTPUT, exist_ok=True)
    b = Bench(args)
    if args.only in (None, 'meta'):
        b.bench_meta()
    if args.only in (None, 'data'):
        b.bench_data()
    if args.only in (None, 'fmt2'):
        b.bench_fmt2()
    text = b.report()
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            f.write(text)
        b.log('wrote %s' % args.out)
    b.log('done')
    return 0


if __name__ == '__main__':
    sys.exit(main())

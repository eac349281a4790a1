"""How large a GROUP record should be (docs/benchmarks.md, "Format 2: GROUP records"): the realistic
volumes of the fmt2 bench written compressed (zstd level 3) with GROUP records of at most 0 (one frame
per record, the format before GROUP records), 1 MiB and 4 MiB, against `zstd -3 -T1` of the same changed
bytes: file size, write time (wall and CPU, median of --runs) and peak RSS, each in a fresh child.

    .venv/bin/python tests/bench/groupsize.py [--runs 3]

The volumes are tests/bench/realdata.py's (built once and cached under tests/output/bench/real/).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
CASES = [('ext4', 256 << 20, True), ('sqlite', 64 << 20, True), ('ext4', 256 << 20, False)]
GROUPS = [0, 1 << 20, 4 << 20]

CHILD = r'''
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _format
from ansible_collections.lvdiff.thin.plugins.module_utils._codec import DiffHeader
from ansible_collections.lvdiff.thin.plugins.module_utils._plan import Plan
a = json.loads(sys.argv[2])
_format.GROUP_BYTES = a['group']
size, cs = a['size'], 64 << 10
base = None if a['full'] else {'name': 'base', 'uuid': 'B', 'thin_id': 1, 'size': size}
header = DiffHeader(volume={'name': 'src', 'uuid': 'S', 'thin_id': 2, 'size': size}, base=base, chunk_size=cs,
                    checksum_level=0, sample_seed=7, created='2026-12-02T00:00:00Z')
plan = Plan(cs, size) if a['full'] else Plan(cs, size, size)
if a['full']:
    plan.add_mapped(a['runs'])
else:
    plan.add_delta(('different', b, n) for b, n in a['runs'])
src = os.open(a['src'], os.O_RDONLY)
out = os.open(a['out'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
res = _diffio.write_diff(out, header, plan, src, None, compress_level=3)
t1, r1 = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
os.close(src)
os.close(out)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over an execve from the parent
hwm = [int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM:')][0]
print(json.dumps({'size': res['size'], 'stored': res['stored_data_bytes'], 'data': res['data_bytes'],
                  'wall': t1 - t0, 'cpu': r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime,
                  'rss_kib': hwm}))
'''


def changed_bytes(src, runs, size, cs=64 << 10):
    with open(src, 'rb') as f:
        for b, n in runs:
            f.seek(b * cs)
            left = min((b + n) * cs, size) - b * cs
            while left:
                block = f.read(min(left, 8 << 20))
                yield block
                left -= len(block)


def zstd_size(src, runs, size):
    """The size of `zstd -3 -T1` of the changed bytes (its output written to a temporary file)."""
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(['zstd', '-3', '-T1', '-c', '-q'], stdin=subprocess.PIPE, stdout=out)
        for block in changed_bytes(src, runs, size):
            p.stdin.write(block)
        p.stdin.close()
        p.wait()
        return os.fstat(out.fileno()).st_size


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    ap.add_argument('--runs', type=int, default=3)
    args = ap.parse_args()
    import realdata
    collections = os.path.join(ROOT, 'tests', 'output', 'collections')
    work = os.path.join(ROOT, 'tests', 'output', 'bench', 'groupsize')
    os.makedirs(work, exist_ok=True)
    print('load average at start: %s' % ' '.join('%.2f' % x for x in os.getloadavg()))
    print('| case | groups of at most | file bytes | vs zstd -3 -T1 | write s (median) | CPU s | peak RSS MiB |')
    print('|---|---|---:|---:|---:|---:|---:|')
    for kind, size, incremental in CASES:
        s1, s2, info = realdata.states(kind, size, log=lambda *a: None)
        runs = info['incremental_runs' if incremental else 'full_runs']
        src = s2 if incremental else s1
        ref = zstd_size(src, runs, info['size'])
        label = '%s %s' % (kind, 'incremental' if incremental else 'full')
        for group in GROUPS:
            rows = []
            for dummy in range(args.runs):
                a = {'group': group, 'size': info['size'], 'full': not incremental, 'runs': runs, 'src': src,
                     'out': os.path.join(work, 'g.diff')}
                out = subprocess.run([sys.executable, '-c', CHILD, collections, json.dumps(a)], check=True,
                                     capture_output=True, text=True).stdout
                rows.append(json.loads(out))
            sizes = set(r['size'] for r in rows)
            assert len(sizes) == 1, 'the same file every run'
            size_ = rows[0]['size']
            print('| %s (%d runs, %.1f MiB, zstd %d bytes) | %s | %d | %.4fx | %.3f | %.3f | %.1f |' % (
                label, len(runs), rows[0]['data'] / 2 ** 20, ref,
                'one frame per record' if not group else '%d MiB' % (group >> 20), size_, size_ / ref,
                statistics.median(r['wall'] for r in rows), statistics.median(r['cpu'] for r in rows),
                max(r['rss_kib'] for r in rows) / 1024))
        os.unlink(os.path.join(work, 'g.diff'))
    print('load average at end: %s' % ' '.join('%.2f' % x for x in os.getloadavg()))


if __name__ == '__main__':
    main()

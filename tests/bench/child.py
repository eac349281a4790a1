"""One measured operation, run in a fresh process by run.py (see _common.run_child).

    python tests/bench/child.py OP '{"json": "args"}'

Prints one JSON line: seconds (the operation only, not start-up or imports), rss_kib
(this process's peak RSS, VmHWM: the thin tool it runs is not counted), and what the
operation counted, for the runner to check; cpu: the CPU seconds (user + system, all
threads) of the operation.

Ops: delta, dump (our streaming parsers into a Plan); delta_go, dump_go (the original
Go tool's approach in our code path: output buffered whole, parsed to a tree, expanded
to one entry per chunk, a plan that never coalesces); write (write_diff; full: a full
image of the runs; compress_level, key_file: format 2), apply (apply_file; key_file);
write_go/apply_go (one record and one syscall per chunk); noop (imports only); floor_copy
(the tight floor of the data path).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

import _common
from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _seal, _thinmeta
from ansible_collections.lvdiff.thin.plugins.module_utils._command import Runner
from ansible_collections.lvdiff.thin.plugins.module_utils._codec import DiffHeader
from ansible_collections.lvdiff.thin.plugins.module_utils._plan import DISCARD, Plan


class PerChunkPlan(Plan):
    """The Go tool's plan: one extent per chunk, never coalesced, all held in memory."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._list = []

    def _put(self, action, begin, length):
        for c in range(begin, min(begin + length, self.nr_chunks)):
            if self._pending is not None:
                self._store(*self._pending)
            self._pending = (action, c, 1)

    def _store(self, action, begin, length):
        nbytes = min((begin + length) * self.chunk_size, self.volume_size) - begin * self.chunk_size
        if action == DISCARD:
            self.discard_chunks += length
            self.discard_bytes += nbytes
        else:
            self.data_chunks += length
            self.data_bytes += nbytes
        self.extents += 1
        self._list.append((action, begin, length))

    def chunk_extents(self):
        if not self.finished:
            raise ValueError('plan not finished')
        return iter(self._list)


def plan_result(plan):
    return {'extents': plan.extents, 'data_chunks': plan.data_chunks,
            'discard_chunks': plan.discard_chunks, 'data_bytes': plan.data_bytes}


def _buffered_tree(argv):
    """The whole tool output in memory, then a whole element tree of it."""
    from lxml import etree
    out = subprocess.run(argv, stdout=subprocess.PIPE, check=True).stdout
    return etree.fromstring(out, etree.XMLParser(huge_tree=True))


def op_delta(a):
    n, cs = a['nr_chunks'], a['chunk_size']
    plan = Plan(cs, n * cs, n * cs)
    plan.add_delta(_thinmeta.thin_delta(Runner(), a['meta'], a['base_id'], a['snap_id'], metadata_snap=False))
    return plan_result(plan)


def op_delta_go(a):
    n, cs = a['nr_chunks'], a['chunk_size']
    root = _buffered_tree([_common.find_tool('thin_delta'), '--snap1', str(a['base_id']),
                           '--snap2', str(a['snap_id']), a['meta']])
    chunks = []  # one entry per chunk of every range, 'same' included, as the Go tool did
    for el in root.iter('same', 'different', 'left_only', 'right_only'):
        begin, length = int(el.get('begin')), int(el.get('length'))
        for c in range(begin, begin + length):
            chunks.append((el.tag, c))
    plan = PerChunkPlan(cs, n * cs, n * cs)
    plan.add_delta((kind, c, 1) for kind, c in chunks)
    return plan_result(plan)


def op_dump(a):
    n, cs = a['nr_chunks'], a['chunk_size']
    plan = Plan(cs, n * cs)
    plan.add_mapped(_thinmeta.thin_mappings(Runner(), a['meta'], a['snap_id'], metadata_snap=False))
    return plan_result(plan)


def op_dump_go(a):
    n, cs = a['nr_chunks'], a['chunk_size']
    root = _buffered_tree([_common.find_tool('thin_dump'), '--dev-id', str(a['snap_id']), a['meta']])
    chunks = []
    for el in root.iter('single_mapping', 'range_mapping'):
        if el.tag == 'single_mapping':
            chunks.append(int(el.get('origin_block')))
        else:
            begin = int(el.get('origin_begin'))
            chunks.extend(range(begin, begin + int(el.get('length'))))
    plan = PerChunkPlan(cs, n * cs)
    plan.add_mapped((c, 1) for c in chunks)
    return plan_result(plan)


def header(a):
    size = a['size']
    base = None if a.get('full') else {'name': 'base', 'uuid': 'BASE-UUID', 'thin_id': 1, 'size': size}
    return DiffHeader(volume={'name': 'src', 'uuid': 'SRC-UUID', 'thin_id': 2, 'size': size}, base=base,
                      chunk_size=a['chunk_size'], checksum_level=a.get('level', 2), sample_seed=7,
                      created='2026-11-27T00:00:00Z')


def _write(a, plan_class):
    with open(a['runs']) as f:
        runs = json.load(f)
    cs, size = a['chunk_size'], a['size']
    if a.get('full'):
        plan = plan_class(cs, size)
        plan.add_mapped(runs)
    else:
        plan = plan_class(cs, size, size)
        plan.add_delta(('different', b, n) for b, n in runs)
    key = _key(a)
    src = os.open(a['src'], os.O_RDONLY)
    base = os.open(a['base'], os.O_RDONLY) if a.get('base') else None
    out = os.open(a['out'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        res = _diffio.write_diff(out, header(a), plan, src, base, compress_level=a.get('compress_level'), key=key)
    finally:
        for fd in (src, base, out):
            if fd is not None:
                os.close(fd)
        plan.close()
    res['extents'] = plan.extents
    return res


def _key(a):
    """The _seal.Key of a['key_file'] (format 2, encrypted), or None."""
    return _seal.Key.from_file(a['key_file']) if a.get('key_file') else None


def op_write(a):
    return _write(a, Plan)


def op_write_go(a):
    return _write(a, PerChunkPlan)


def op_apply(a):
    fd = os.open(a['target'], os.O_RDWR)
    try:
        res = _diffio.apply_file(a['diff'], fd, verify_first=a.get('verify_first', False), key=_key(a))
    finally:
        os.close(fd)
    return {'sha1': res['sha1'], 'size': res['size'], 'records': res['records']}


op_apply_go = op_apply  # the per-chunk diff written by write_go: one pwrite per record


def op_floor_copy(a):
    """The tight floor: read a file sequentially in 4 MiB blocks, write each block to a
    new file and hash it with hashlib's SHA-1 (OpenSSL) on a second thread. No framing,
    no CRC, no extents: the least work that reads, hashes and writes these bytes.
    overwrite: write into the existing file in place (as apply does into its target)."""
    import hashlib
    import queue
    import threading
    h = hashlib.sha1()
    free, work = queue.Queue(), queue.Queue()
    for dummy in range(4):
        free.put(bytearray(4 << 20))

    def hasher():
        while True:
            item = work.get()
            if item is None:
                return
            buf, n = item
            h.update(memoryview(buf)[:n])
            free.put(buf)

    thread = threading.Thread(target=hasher)
    thread.start()
    src = os.open(a['payload'], os.O_RDONLY)
    out = os.open(a['out'], os.O_WRONLY | (0 if a.get('overwrite') else os.O_CREAT | os.O_TRUNC), 0o600)
    try:
        off = 0
        while True:
            buf = free.get()
            n = os.preadv(src, [buf], off)
            if not n:
                break
            view = memoryview(buf)[:n]
            done = 0
            while done < n:
                done += os.write(out, view[done:])
            work.put((buf, n))
            off += n
    finally:
        work.put(None)
        thread.join()
        os.close(src)
        os.close(out)
    return {'sha1': h.hexdigest(), 'size': off}


def op_noop(a):
    """Nothing: the peak RSS of a child that only imports (interpreter, lxml, zstandard, cryptography)."""
    return {}


def main():
    op, args = sys.argv[1], json.loads(sys.argv[2])
    fn = globals()['op_' + op]
    if args.get('key_file'):
        _seal._load_aead()  # cryptography's import, once per process (docs/benchmarks.md): not the operation's
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    result = fn(args)
    elapsed = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime  # every thread's, user and system
    result.update(seconds=elapsed, cpu=cpu, rss_kib=_common.vm_hwm_kib())
    print(json.dumps(result))


if __name__ == '__main__':
    main()

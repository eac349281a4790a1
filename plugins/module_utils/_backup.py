# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Make a diff of one volume: what lvdiff does, shared by the modules lvdiff and send."""

from __future__ import annotations

import contextlib
import datetime
import os
import threading
import zlib

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _seal, _thinmeta
from ansible_collections.lvdiff.thin.plugins.module_utils._chunkcopy import MAX_EXTENT
from ansible_collections.lvdiff.thin.plugins.module_utils._codec import CREATED_FORMAT, DiffHeader
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError
from ansible_collections.lvdiff.thin.plugins.module_utils._lvm import Lvm, check_name, thin_in
from ansible_collections.lvdiff.thin.plugins.module_utils._plan import Plan, ceil_div
from ansible_collections.lvdiff.thin.plugins.module_utils._progress import NO_PROGRESS


# What a kept diff's summary tells of its compression and encryption, as a written one's result.
_SEALING = ('compression', 'encryption', 'key_id', 'stored_data_bytes', 'compression_ratio')


def _pairs(raw):
    pairs = {}
    for k, v in raw.items():
        if isinstance(v, (dict, list)):
            raise LvdiffError('pairs must map text to text; %r holds a %s' % (k, type(v).__name__))
        pairs[str(k)] = '' if v is None else str(v)
    return pairs


def _identity(header):
    """What makes two diffs of the same read-only volumes the same diff (not the pool transaction, which
    moves with every thin volume created or removed anywhere in the pool). A HyperLayer file records
    only the volume's name, UUID and size and the base's UUID: compare what it records."""
    d = header.as_dict()
    volume, base = d['volume'], d['base']
    if header.format == 'hyperlayer':
        volume = dict((k, volume[k]) for k in ('name', 'uuid', 'size'))
        base = base and {'uuid': base['uuid']}
    return [volume, base] + [d[k] for k in ('chunk_size', 'checksum_level', 'pairs', 'format')]


def _same_sealing(header, compress_level, key):
    """Whether a diff's header has the compression (its algorithm: a level only changes the size) and the
    encryption (none, or any: that key opened it) asked for."""
    return (header.compression is not None) == (compress_level is not None) and (
        header.encryption is not None) == (key is not None)


def _existing(dest, header, compress_level=None, key=None):
    """The summary of dest if it is a valid diff with header's identity that we wrote, compressed and
    encrypted as asked (with key itself: its key id, checked when the file is opened with it), else None."""
    st = _diffio.owned_file(dest)
    if st is None:
        return None
    try:
        fd = os.open(dest, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return None
    with os.fdopen(fd, 'rb', buffering=1 << 20) as f:
        if not _diffio.same_file(st, _diffio.owned_file(dest, os.fstat(fd))):
            return None  # replaced between the lstat and the open
        try:
            with _diffio.open_reader(f, key) as reader:  # another key or a plain file for a key: refused, rewritten
                if _identity(reader.header) != _identity(header) or not _same_sealing(
                        reader.header, compress_level, key):
                    return None
                return _diffio.verify(reader)
        except (LvdiffError, OSError):
            return None  # not a valid diff (or unreadable): rewrite it


def _check_max_len(fmt, chunk_size):
    """The longest base-check record the writer of fmt writes (HyperLayer: one chunk)."""
    return chunk_size if fmt == 'hyperlayer' else MAX_EXTENT


def _volumes(lvs, p):
    """(lv, base or None, pool), refused unless thin_delta can compare them in the format asked for."""
    lv = thin_in(lvs, p['vg'], p['lv'])
    base = thin_in(lvs, p['vg'], p['base'], 'base volume') if p['base'] else None
    if base is not None and base.pool != lv.pool:
        raise LvdiffError('%s and its base %s are in different thin pools (%s, %s); thin_delta compares '
                          'volumes of one pool only' % (lv.name, base.name, lv.pool, base.pool))
    if base is not None and base.uuid == lv.uuid:
        raise LvdiffError('lv and base are the same volume')
    if p['format'] == 'hyperlayer' and base is None:
        raise LvdiffError('format hyperlayer cannot hold a full image: give a base, or use format lvdiff')
    pool = lvs.get(lv.pool)
    if pool is None or not pool.is_pool:
        raise LvdiffError('thin pool %s/%s of %s not found' % (lv.vg, lv.pool, lv.name))
    return lv, base, pool


def _check_dest(dest):
    if os.path.isdir(dest):
        raise LvdiffError('dest %s is a directory; give a file path' % dest)
    if not os.path.isdir(os.path.dirname(os.path.abspath(dest))):
        raise LvdiffError('the directory of dest %s does not exist' % dest)
    return dest


def _created(text):
    """The header's creation time: text, checked, or now."""
    if text is None:
        return datetime.datetime.now(datetime.timezone.utc).strftime(CREATED_FORMAT)
    try:
        datetime.datetime.strptime(text, CREATED_FORMAT)
    except (TypeError, ValueError):
        raise LvdiffError('created %r is not a UTC time as YYYY-mm-ddTHH:MM:SSZ' % (text,))
    return text


def make_header(p, lv, base, pool):
    def vol(x):
        return {'name': x.name, 'uuid': x.uuid, 'thin_id': x.thin_id, 'size': x.size}
    return DiffHeader(
        volume=vol(lv), base=vol(base) if base else None, chunk_size=pool.chunk_size,
        checksum_level=p['checksum_level'], pairs=_pairs(p['pairs']), pool_transaction=pool.transaction_id,
        sample_seed=zlib.crc32(('%s/%s' % (lv.uuid, base.uuid if base else '')).encode()),
        created=_created(p.get('created')),
        format=p['format'])


# A pool has one metadata snapshot. Threads of one run (send's jobs) take turns here, without the
# file lock's timeout, which is for other processes: a long diff of one volume is no reason to fail
# the next volume of the same pool.
_POOL_LOCKS = {}
_POOL_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def _pool_turn(vg, pool):
    with _POOL_LOCKS_GUARD:
        lock = _POOL_LOCKS.setdefault((vg, pool), threading.Lock())
    with lock:
        yield


class Diff:
    """One diff in the making: lvdiff's options p, the volumes, its header and result so far; the plan once
    made. done: dest already holds this very diff (result is final, nothing to plan or write)."""

    def __init__(self, p, lv, base, pool, header, result, compress_level=None, key=None):
        self.p, self.lv, self.base, self.pool, self.header, self.result = p, lv, base, pool, header, result
        self.compress_level, self.key = compress_level, key
        self.done = False
        self.plan = None

    def close(self):
        if self.plan is not None:
            self.plan.close()
            self.plan = None


class Differ:
    """Diffs of volumes of one host; the thin tools' version is checked once per run. A diff is prepared
    (names, volumes, an existing complete file), planned (thin_delta on a metadata snapshot the caller
    holds) and written (the volumes must be active): diff() does all three for one volume (lvdiff); send
    plans the diffs of many volumes of a pool under one metadata snapshot."""

    def __init__(self, runner, check_mode=False, on_temp=None):
        self.runner = runner
        self.check_mode = check_mode
        self.on_temp = on_temp
        self.lvm = Lvm(runner)
        self.version = '.'.join(map(str, _thinmeta.tools_version(runner)))

    def diff(self, p, lvs=None, progress=NO_PROGRESS):
        """lvdiff's work and result for p (lvdiff's options: vg, lv, base, dest, pairs, checksum_level,
        format, force); lvs is {name: LV} of p['vg'] when the caller has read it (else one lvs). progress
        (_progress's) follows the writing."""
        job = self.prepare(p, lvs)
        if job.done:
            return job.result
        try:
            with self.lvm.active(*([] if self.check_mode else [job.lv, job.base])):
                with _pool_turn(job.lv.vg, job.lv.pool), \
                        _thinmeta.MetadataSnapshot(self.runner, job.lv.vg, job.lv.pool) as meta:
                    self.plan(job, meta.tmeta)
                return self.write(job, progress)
        finally:
            job.close()

    def prepare(self, p, lvs=None):
        """The Diff of p: every name and volume checked; done when dest already holds it."""
        # A format that cannot hold them, a missing library, a bad key file: refused before anything is done.
        level, key = _diffio.writer_options(p, p['format'])
        check_name('volume', p['lv'])  # every name refused before any command runs
        if p['base']:
            check_name('base volume', p['base'])
        if lvs is None:
            lvs = self.lvm.lvs(p['vg'])
        lv, base, pool = _volumes(lvs, p)
        dest = _check_dest(p['dest'])
        header = make_header(p, lv, base, pool)
        job = Diff(p, lv, base, pool, header, {
            'changed': True, 'dest': dest, 'chunk_size': pool.chunk_size, 'volume_size': lv.size,
            'pairs': header.pairs, 'lv_uuid': lv.uuid, 'base_uuid': base.uuid if base else None,
            'format': p['format'], 'thin_tools_version': self.version,
            # What a run writes; the file's own once it is written or kept (a passphrase's key id is per file).
            'compression': 'zstd' if level is not None else 'none',
            'encryption': _seal.WRITE_ALGORITHM if key is not None else 'none',
            'key_id': key.fixed_id() if key is not None else None,
            'stored_data_bytes': None, 'compression_ratio': None}, level, key)

        if not self.check_mode:
            _diffio.sweep(dest)
        stable = lv.read_only and (base is None or base.read_only)
        if stable and not p['force']:
            done = _existing(dest, header, level, key)
            if done is not None:
                counts = done['records']
                job.result.update((k, done[k]) for k in _SEALING)
                job.result.update(changed=False, size=done['size'], sha1=done['sha1'], checks=counts['check'],
                                  data_chunks=ceil_div(done['data_bytes'], pool.chunk_size),
                                  discard_chunks=ceil_div(done['discard_bytes'], pool.chunk_size))
                job.done = True
        return job

    def plan(self, job, tmeta):
        """What job's diff carries, from the metadata snapshot tmeta of its pool (held by the caller)."""
        lv, base = job.lv, job.base
        job.plan = Plan(job.pool.chunk_size, lv.size, base.size if base else None)
        if base is not None:
            job.plan.add_delta(_thinmeta.thin_delta(self.runner, tmeta, base.thin_id, lv.thin_id))
        else:
            job.plan.add_mapped(_thinmeta.thin_mappings(self.runner, tmeta, lv.thin_id))
        job.result.update(data_chunks=job.plan.data_chunks, discard_chunks=job.plan.discard_chunks)

    def write(self, job, progress=NO_PROGRESS):
        """Write job's planned diff (its volumes active); in check mode, its size and checks instead. The
        result; the plan is closed. progress: write_diff's."""
        p, result = job.p, job.result
        try:
            if self.check_mode:
                checks = job.plan.base_checks(job.header.checksum_level, job.header.sample_seed,
                                              _check_max_len(p['format'], job.pool.chunk_size)) if job.base else ()
                result.update(size=_diffio.estimate_size(job.header, job.plan, p['format'], job.compress_level,
                                                         job.key),
                              checks=sum(1 for dummy in checks))
                return result
            written = self._write(result['dest'], job.header, job.plan, job.lv, job.base, p['format'], progress,
                                  job.compress_level, job.key)
        finally:
            job.close()
        result.update(_diffio.sealing(job.header))  # the writer filled in the header's key id
        stored = written['stored_data_bytes']
        result.update(size=written['size'], sha1=written['sha1'], checks=written['checks'], stored_data_bytes=stored,
                      compression_ratio=round(written['data_bytes'] / stored, 3) if stored else None)
        return result

    def _write(self, dest, header, plan, lv, base, fmt, progress, compress_level=None, key=None):
        """Open the volumes (before any file is made: a missing one leaves nothing behind), then write the
        diff safely to dest (_diffio.write_diff_file: a private temporary file renamed by us)."""
        fds = []
        try:
            fds.append(_open_volume(lv, 'volume'))
            if base is not None:
                fds.append(_open_volume(base, 'base volume'))
            return _diffio.write_diff_file(dest, header, plan, fds[0], fds[1] if base else None, fmt,
                                           source='%s/%s' % (lv.vg, lv.name), on_temp=self.on_temp,
                                           progress=progress, compress_level=compress_level, key=key)
        finally:
            for x in fds:
                os.close(x)


def _open_volume(lv, what):
    try:
        return os.open(lv.path, os.O_RDONLY)
    except OSError as e:
        raise LvdiffError('cannot open %s %s/%s (%s) for reading: %s' % (what, lv.vg, lv.name, lv.path, e.strerror))

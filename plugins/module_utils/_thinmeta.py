# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Thin pool metadata: tool versions, the pool's metadata snapshot, and streaming
parses of thin_delta / thin_dump output into chunk runs.

The parsers use lxml's parser-target interface fed in blocks: no element tree is
built at all (iterparse builds and then clears one element per mapping, about
twice as slow), so memory stays flat however many mappings a pool has.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
import tempfile

from ansible_collections.lvdiff.thin.plugins.module_utils import _lock
from ansible_collections.lvdiff.thin.plugins.module_utils._command import wait_for_children
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import (
    CommandError, LvdiffError, MetadataSnapshotHeldError, terminate_gracefully)
from ansible_collections.lvdiff.thin.plugins.module_utils._lvm import check_name, dm_name
from ansible_collections.lvdiff.thin.plugins.module_utils._plan import BASE_ONLY, DIFFERENT, SAME, SOURCE_ONLY

try:
    from lxml import etree
    HAS_LXML = True
    LXML_IMPORT_ERROR = None
except ImportError as e:  # pragma: no cover - exercised by the sanity import test
    HAS_LXML = False
    LXML_IMPORT_ERROR = e

# Kinds of thin_delta runs (defined with the plan that consumes them).
_DELTA_TAGS = {'same': SAME, 'different': DIFFERENT, 'differ': DIFFERENT,
               'left_only': BASE_ONLY, 'right_only': SOURCE_ONLY}
_FEED_BLOCK = 256 << 10
# thin_dump writes one line per write(2); a 1 MiB pipe (Linux's default cap for
# unprivileged users) instead of 64 KiB lets it run ahead, and we read in bigger blocks.
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, 'F_SETPIPE_SZ', 1031)

# --- tool versions -----------------------------------------------------------------

# The version floor, re-examined for issue 14 against upstream's CHANGES and what distributions ship.
# Kept as it was: every release it refuses has a thin_delta/thin_dump fix after it (0.6.2 and 0.7.0
# "thin_delta bug fixes" incl. the mapping comparison; 1.0.5 "thin_dump output that doesn't keep
# shared mappings"; 1.0.6 "range mappings preprocessing in thin_delta" and its command line), and
# none of it is what a supported distribution ships today: Debian 11/12, Ubuntu 22.04 and RHEL 8
# have 0.9.0, Debian 13 has 1.1.0. No fix to thin_delta or thin_dump output came after 1.0.6
# (1.0.7 to 1.1.0 and 1.2.0 change other tools), so 1.0.6 stays the 1.x floor. Both generations
# that pass are tested on every make unit: the system's 0.9.0 and Debian 13's 1.1.0
# (tests/support/thintools.py). docs/site-src/rst/guides/troubleshooting.md says the same.
_BAD_VERSIONS = [
    # (first bad, first good, why); ranges are half-open.
    ((0, 0, 0), (0, 7, 4), 'releases before 0.7.4 miss tail blocks and compare mappings wrongly'),
    ((0, 7, 5), (0, 7, 6), '0.7.5 reports left_only ranges past the end of a shrunk volume'),
    ((1, 0, 0), (1, 0, 6), '1.0.0 to 1.0.5 merge runs without checking data-block contiguity '
                           'and can miss changes silently (and 1.0.0 ignores -m)'),
]


def parse_version(text):
    m = re.search(r'(\d+)\.(\d+)\.(\d+)', text or '')
    if not m:
        raise CommandError('cannot read the thin-provisioning-tools version from %r' % (text,))
    return tuple(int(x) for x in m.groups())


def check_tools_version(version):
    """Raise LvdiffError for a thin-provisioning-tools release known to give wrong output."""
    for first_bad, first_good, why in _BAD_VERSIONS:
        if first_bad <= version < first_good:
            raise LvdiffError('thin-provisioning-tools %s is not safe to use: %s; install 0.7.4+ '
                              '(not 0.7.5) or 1.0.6+' % ('.'.join(map(str, version)), why))
    return version


def tools_version(runner):
    rc, out, err = runner.run(['thin_delta', '--version'])
    return check_tools_version(parse_version(out + err))

# --- streaming parsers -------------------------------------------------------------


class _Malformed(Exception):
    """A well-formed element that thin tools never print; _feed adds the tool and the line."""


def _bad(tag, attrib, why):
    """A _Malformed naming the element; why is a message or the KeyError/ValueError of int()."""
    if isinstance(why, KeyError):
        why = 'no %s attribute' % why.args[0]
    elif isinstance(why, ValueError):
        why = 'attribute values must be non-negative integers'
    shown = ''.join(' %s="%s"' % kv for kv in list(attrib.items())[:6])
    return _Malformed('<%s%s>: %s' % (tag, shown[:300], why))


def _line_of(prev, block, line, nth):
    """The line of the nth element that libxml2 reported while parsing block (the error path
    only: counting lines per element would slow every parse). Elements reported during a feed start
    in block, or in an unfinished start tag at the end of prev; line is block's first line."""
    lt = prev.rfind(b'<')
    head = prev[lt:] if lt >= 0 and prev.find(b'>', lt) < 0 else b''
    text = head + block
    starts = [m.start() for m in re.finditer(rb'<[^/!?]', text)]
    if not 0 < nth <= len(starts):
        return line
    return line - head.count(b'\n') + text.count(b'\n', 0, starts[nth - 1])


def _feed(parser, target, stream, tool):
    """Feed stream to an lxml target parser; yield what the target collected per block.
    Every malformed input raises CommandError naming the tool and the line."""
    read = getattr(stream, 'read')
    line, prev = 1, b''
    while True:
        block = read(_FEED_BLOCK)
        if not block:
            break
        seen = target.elements
        try:
            parser.feed(block)
        except etree.XMLSyntaxError as e:  # its message names the line
            raise CommandError('%s printed malformed XML: %s' % (tool, e))
        except _Malformed as e:
            raise CommandError('%s printed a malformed element at line %d: %s'
                               % (tool, _line_of(prev, block, line, target.elements - seen), e))
        line += block.count(b'\n')
        prev = block
        if target.runs:
            yield target.runs
            target.runs = []
    try:
        parser.close()
    except etree.XMLSyntaxError as e:
        raise CommandError('%s printed truncated or malformed XML: %s' % (tool, e))
    if target.runs:
        yield target.runs
    target.check_complete()


def _new_parser(target):
    # No huge_tree: it lifts libxml2's guards against entity amplification, and thin tools
    # print neither deep trees nor long text. Entities, DTDs and the network stay off, and
    # the targets refuse a DOCTYPE at all (doctype()).
    return etree.XMLParser(target=target, resolve_entities=False, no_network=True, load_dtd=False)


class _Target:
    """What both targets share: the element count (for error lines) and no DOCTYPE."""

    elements = 0  # start tags seen, to name the line of an error (see _line_of)

    def doctype(self, name, pubid, system):
        raise _Malformed('a DOCTYPE (%s), which thin tools never print; refused (entities, DTDs)'
                         % name)

    def close(self):
        return None


class _DeltaTarget(_Target):
    def __init__(self):
        self.runs = []
        self.seen_diff = False
        self._end = 0  # end of the last run: runs ascend and do not overlap

    def start(self, tag, attrib):
        self.elements += 1
        kind = _DELTA_TAGS.get(tag)
        if kind is not None:
            try:
                begin, length = int(attrib['begin']), int(attrib['length'])
            except (KeyError, ValueError) as e:
                raise _bad(tag, attrib, e)
            if begin < self._end or length <= 0:  # also every negative value
                raise _bad(tag, attrib, 'runs must ascend without overlap and have a positive length')
            self._end = begin + length
            self.runs.append((kind, begin, length))
        elif tag == 'diff':
            self.seen_diff = True
        elif tag == 'range':
            raise LvdiffError('thin_delta printed verbose output; run it without --verbose')

    # No end() or data(): lxml calls only the methods a target has, and a Python call
    # per element end and per whitespace text costs more than the rest of the parse.

    def check_complete(self):
        if not self.seen_diff:
            raise CommandError('thin_delta output has no <diff> element')


def delta_runs(stream):
    """Yield lists of (kind, begin_chunk, length_chunks) from thin_delta XML output.

    kind is SAME, DIFFERENT, BASE_ONLY (left_only) or SOURCE_ONLY (right_only).
    """
    target = _DeltaTarget()
    return _feed(_new_parser(target), target, stream, 'thin_delta')


class _DumpTarget(_Target):
    """Collects the mapped runs of one device, coalesced in virtual (origin) space.

    Rust thin_dump may factor shared subtrees out as <def name> ... </def> and refer
    to them with <ref name/>; defs are spooled to a temporary file, not to memory.

    start() runs once per mapping (millions of times on a big pool), so its
    single_mapping path is inlined: the pending run is two ints, not a tuple, and
    whether mappings count is one flag, updated where in_device/def_name change.
    There is no data() (whitespace text is ignored anyway). Validation costs
    almost nothing per mapping: int() raises on a non-integer, and order (which
    also refuses negatives) is checked only where a new run starts.
    """

    _PAIR = struct.Struct('<QQ')

    def __init__(self, dev_id):
        self.dev_id = str(dev_id)
        self.runs = []
        self.device = None
        self.in_device = False
        self.def_name = None
        self.defs = {}
        self.spool = None
        # The run [_begin, _end) not yet emitted, to coalesce adjacent mappings (empty if
        # equal); runs must start at or after _end, which also refuses negative blocks.
        self._begin = self._end = 0
        self._collect = False  # in_device or def_name is not None

    def _update_collect(self):
        self._collect = self.in_device or self.def_name is not None

    def _add(self, begin, length):
        if begin != self._end or length <= 0:
            if begin < self._end or length <= 0:
                raise _Malformed('origin block %d length %d: mappings must ascend without overlap '
                                 'and have a positive length' % (begin, length))
            if self._end > self._begin:
                self._emit((self._begin, self._end - self._begin))
            self._begin = begin
        self._end = begin + length

    def _emit(self, run):
        if self.def_name is not None:
            self.spool.write(self._PAIR.pack(*run))
            self.defs[self.def_name][1] += 1
        else:
            self.runs.append(run)

    def _flush(self):
        if self._end > self._begin:
            self._emit((self._begin, self._end - self._begin))
        self._begin = self._end = 0

    def start(self, tag, attrib):
        self.elements += 1
        if tag == 'single_mapping':
            if self._collect:
                try:
                    begin = int(attrib['origin_block'])
                except (KeyError, ValueError) as e:
                    raise _bad(tag, attrib, e)
                if begin == self._end:
                    self._end = begin + 1
                else:
                    if begin < self._end:  # also every negative block
                        raise _bad(tag, attrib, 'mappings must ascend without overlap')
                    if self._end > self._begin:
                        self._emit((self._begin, self._end - self._begin))
                    self._begin, self._end = begin, begin + 1
            return
        try:
            self._start(tag, attrib)
        except (KeyError, ValueError, _Malformed) as e:
            raise _bad(tag, attrib, e.args[0] if isinstance(e, _Malformed) else e)

    def _start(self, tag, attrib):
        if tag == 'range_mapping':
            if self._collect:
                self._add(int(attrib['origin_begin']), int(attrib['length']))
        elif tag == 'device':
            if self.in_device or self.def_name is not None:
                raise _Malformed('a <device> inside a <device> or <def>')
            if attrib.get('dev_id') == self.dev_id:
                self.in_device = True
                self._update_collect()
                self.device = dict(attrib)
        elif tag == 'def':
            if self.in_device or self.def_name is not None:
                raise _Malformed('a <def> inside a <device> or <def>')
            self._flush()
            if self.spool is None:
                self.spool = tempfile.TemporaryFile()
            self.spool.seek(0, os.SEEK_END)
            self.def_name = attrib['name']
            self._update_collect()
            self.defs[self.def_name] = [self.spool.tell(), 0]
        elif tag == 'ref':
            if self.def_name is not None:  # replaying would read the spool being written
                raise _Malformed('a <ref> inside a <def>')
            if self.in_device:
                self._replay(attrib['name'])

    def _replay(self, name):
        if name not in self.defs:
            raise _Malformed('it refers to an undefined subtree %r' % name)
        offset, count = self.defs[name]
        self.spool.seek(offset)
        size = self._PAIR.size
        while count:
            n = min(count, 65536)
            buf = self.spool.read(n * size)
            for begin, length in self._PAIR.iter_unpack(buf):
                self._add(begin, length)
            count -= n

    def end(self, tag):
        if tag == 'device' and self.in_device:
            self._flush()
            self.in_device = False
            self._update_collect()
        elif tag == 'def':
            self._flush()
            self.def_name = None
            self._update_collect()

    def check_complete(self):
        if self.spool is not None:
            self.spool.close()
        if self.device is None:
            raise LvdiffError('thin_dump output has no device %s' % self.dev_id)


def mapped_runs(stream, dev_id):
    """Yield lists of (begin_chunk, length_chunks): the mapped chunks of device dev_id
    in thin_dump XML output, ascending and coalesced."""
    target = _DumpTarget(dev_id)
    return _feed(_new_parser(target), target, stream, 'thin_dump')

# --- running the tools ---------------------------------------------------------------


def _widen_pipe(stream):
    """Best effort: grow the pipe that stream reads from to _PIPE_SIZE."""
    try:
        fcntl.fcntl(stream.fileno(), _F_SETPIPE_SZ, _PIPE_SIZE)
    except (AttributeError, OSError, ValueError):  # not a pipe, or over the user's pipe quota
        pass


def _flatten(batches):
    for batch in batches:
        yield from batch


def thin_delta(runner, tmeta, base_id, source_id, metadata_snap=True):
    """Yield (kind, begin, length) runs between two thin devices, streaming thin_delta."""
    argv = ['thin_delta'] + (['-m'] if metadata_snap else []) + [
        '--snap1', str(base_id), '--snap2', str(source_id), tmeta]
    with runner.stream(argv) as out:
        _widen_pipe(out)
        yield from _flatten(delta_runs(out))


def thin_mappings(runner, tmeta, dev_id, metadata_snap=True):
    """Yield (begin, length) runs of the chunks mapped in one thin device, streaming thin_dump."""
    argv = ['thin_dump'] + (['-m'] if metadata_snap else []) + ['--dev-id', str(dev_id), tmeta]
    with runner.stream(argv) as out:
        _widen_pipe(out)
        yield from _flatten(mapped_runs(out, dev_id))

# --- the pool's metadata snapshot ------------------------------------------------------


class MetadataSnapshot:
    """Reserve the pool's metadata snapshot for the duration of a ``with`` block.

    A per-pool lock file serialises our own users; a snapshot that someone else
    holds is reported, never released. What we reserved is released on exit,
    on exceptions, and on SIGTERM/SIGHUP (turned into Terminated meanwhile).
    """

    LOCK_DIR = _lock.LOCK_DIR  # lock_dir overrides it (tests)

    def __init__(self, runner, vg, pool, lock_timeout=300.0, lock_dir=None):
        check_name('volume group', vg)  # they name the lock file and dmsetup's arguments
        check_name('thin pool', pool)
        self.runner = runner
        self.vg = vg
        self.pool = pool
        self.tpool = dm_name(vg, pool) + '-tpool'
        self.tmeta = '/dev/mapper/' + dm_name(vg, pool) + '_tmeta'
        self.lock_timeout = lock_timeout
        self.lock_dir = lock_dir or self.LOCK_DIR
        self._lock = None
        self._reserved = False
        self._signals = None

    def held_root(self):
        """The metadata root of a held snapshot, or None."""
        rc, out, err = self.runner.run(['dmsetup', 'status', self.tpool])
        fields = out.split()
        if len(fields) < 7 or fields[2] != 'thin-pool':
            raise CommandError('unexpected dmsetup status for %s: %r' % (self.tpool, out.strip()))
        return None if fields[6] == '-' else fields[6]

    def _acquire_lock(self):
        self._lock = _lock.acquire(
            self.tpool + '.lock', timeout=self.lock_timeout, lock_dir=self.lock_dir,
            busy='timed out after %.0f s waiting for the metadata lock of pool %s/%s: another lvdiff run '
                 'holds it' % (self.lock_timeout, self.vg, self.pool))

    def __enter__(self):
        self._signals = terminate_gracefully()
        self._signals.__enter__()
        reserving = False
        try:
            self._acquire_lock()
            held = self.held_root()
            if held is not None:
                raise MetadataSnapshotHeldError(
                    'pool %s/%s already has a metadata snapshot (root %s) held by another tool; '
                    'it was left alone. Wait for that tool, or if you are sure nothing uses it, '
                    'run: dmsetup message %s 0 release_metadata_snap' % (self.vg, self.pool, held, self.tpool))
            reserving = True
            rc, out, err = self.runner.run(['dmsetup', 'message', self.tpool, '0', 'reserve_metadata_snap'],
                                           check=False)
            reserving = False
            if rc != 0:
                if self.held_root() is not None:
                    raise MetadataSnapshotHeldError('pool %s/%s: another tool reserved the metadata snapshot '
                                                    'at the same moment; try again' % (self.vg, self.pool))
                raise CommandError('reserving the metadata snapshot of %s failed: %s' % (self.tpool, err.strip()))
            self._reserved = True
        except BaseException:
            if reserving:  # interrupted by a signal while dmsetup ran, which may still reserve: ours then
                wait_for_children()
                self._reserved = self.held_root() is not None
            self._cleanup()
            raise
        return self

    def release(self):
        if self._reserved:
            self._reserved = False
            self.runner.run(['dmsetup', 'message', self.tpool, '0', 'release_metadata_snap'])

    def _cleanup(self):
        try:
            self.release()
        finally:
            if self._lock is not None:
                os.close(self._lock)
                self._lock = None
            self._signals.__exit__(None, None, None)

    def __exit__(self, exc_type, exc, tb):
        self._cleanup()
        return False

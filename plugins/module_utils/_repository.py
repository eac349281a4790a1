# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""A backup repository: diff files kept as backups on a plain file server (no LVM, no lxml), found by
their place in a directory tree, linked into chains by their headers, and a chain resolved and verified
before anything is restored from it.

Layout::

    <root>/<host>/<vg>/<lv>/<created as YYYYmmddTHHMMSSZ>-<full|incr>.lvdiff

- host, vg, lv: LVM and host name characters only (A-Z a-z 0-9 + _ . -), not starting with '-', not
  '.' or '..', at most 255 characters. The same VG and LV names on two hosts are two volumes.
- created: the time in the diff header (UTC), e.g. ``20261201T030000Z-incr.lvdiff`` for a header
  created '2026-12-01T03:00:00Z'; ``full`` for a full image, ``incr`` for an incremental.
- The writer records the header pairs ``backup_host``, ``backup_vg`` and ``backup_lv``. A file whose
  pairs name another place than its directory is misplaced; a file without them is taken where it is.
- Transfers leave ``<name>.part`` and ``<name>.part.sha1`` beside finished files, and a local writer
  ``.<name>.XXXXXXXX.part``: those are partial, never backups.

The headers are the truth, names only help humans: a chain links a backup to the one whose header
volume UUID is its header base UUID, whatever the names say (a name that contradicts its header is
misplaced). A HyperLayer header records no creation time: its name's time stands in.

Everything below root is untrusted: no symlink is followed (one anywhere is misplaced), nothing outside
root is opened, a directory may hold at most MAX_ENTRIES entries, and a scan reads only headers.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import io
import os
import re
import stat

from ansible_collections.lvdiff.thin.plugins.module_utils._codec import CREATED_FORMAT
from ansible_collections.lvdiff.thin.plugins.module_utils._diffio import open_reader, sealing, verify
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError
from ansible_collections.lvdiff.thin.plugins.module_utils._progress import NO_PROGRESS

MAX_ENTRIES = 100000
MAX_NAME = 255
# What a scan keeps of each header's pairs (a hostile header may hold 1 MiB of them, in each of many files).
MAX_KEPT_PAIRS = 1 << 16
PAIR_KEYS = ('backup_host', 'backup_vg', 'backup_lv')
ISO_FORMAT = CREATED_FORMAT
NAME_TIME_FORMAT = '%Y%m%dT%H%M%SZ'
LEVELS = ('host', 'VG', 'LV')
BACKUP_NAME_HINT = '<created as YYYYmmddTHHMMSSZ>-<full|incr>.lvdiff'

_NAME = re.compile(r'[A-Za-z0-9+_.][A-Za-z0-9+_.-]*\Z')
_ISO = re.compile(r'[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\Z')
_BACKUP_FILE = re.compile(r'([0-9]{8}T[0-9]{6}Z)-(full|incr)\.lvdiff\Z')
_PARTIAL = re.compile(r'(?:([0-9]{8}T[0-9]{6}Z-(?:full|incr)\.lvdiff)\.part(?:\.sha1)?'
                      r'|\.([0-9]{8}T[0-9]{6}Z-(?:full|incr)\.lvdiff)\.[a-z0-9_]{8}\.part)\Z')
# Opening a name below root: never through a symlink, never a FIFO that would block.
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_HEADER_BUFFER = 1 << 16
# The base of an orphan: never an id (ids hold no space), so _retention sees a base that is missing.
MISSING_BASE = 'volume %s'


def is_name(name):
    return (isinstance(name, str) and _NAME.match(name) is not None and name not in ('.', '..')
            and len(name) <= MAX_NAME)


def check_name(name, level):
    if not is_name(name):
        raise LvdiffError('%s name %r is not allowed in a backup repository: use A-Z a-z 0-9 + _ . - (not - '
                          'first), not . or .., at most %d characters' % (level, name, MAX_NAME))
    return name


def parse_time(text):
    """The datetime of an ISO time 'YYYY-mm-ddTHH:MM:SSZ', or None if text is not one."""
    if not isinstance(text, str) or not _ISO.match(text):
        return None
    try:
        return datetime.datetime.strptime(text, ISO_FORMAT)
    except ValueError:  # e.g. month 13
        return None


def _name_time(text):
    try:
        return datetime.datetime.strptime(text, NAME_TIME_FORMAT)
    except ValueError:
        return None


def backup_name(created, full):
    when = parse_time(created)
    if when is None:
        raise LvdiffError('created %r is not a time YYYY-mm-ddTHH:MM:SSZ' % (created,))
    return '%s-%s.lvdiff' % (when.strftime(NAME_TIME_FORMAT), 'full' if full else 'incr')


def backup_path(root, host, vg, lv, created, full):
    """Where the backup of host's vg/lv created at created (ISO 'YYYY-mm-ddTHH:MM:SSZ') belongs."""
    for name, level in zip((host, vg, lv), LEVELS):
        check_name(name, level)
    return os.path.join(root, host, vg, lv, backup_name(created, full))


# --- scanning ------------------------------------------------------------------------------------


def _open_root(root):
    # root itself is the operator's own path (it may be a symlink to a mount); only what is below is untrusted
    try:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise LvdiffError('cannot open the backup repository %s: %s' % (root, e.strerror))


def _shown(text):
    """text fit for a report: a name read from a hostile directory may hold control characters or
    bytes that are not UTF-8 (os decodes them as surrogates), which would garble a log or JSON."""
    try:
        text.encode('utf-8')
        if text.isprintable():
            return text
    except UnicodeEncodeError:
        pass
    return ascii(text)[1:-1]


def _said(text):
    """A string from a header, for a message: bounded and escaped (a hostile UUID may be 1 MiB of anything)."""
    return _shown(text[:MAX_NAME]) if isinstance(text, str) else text


def _is_symlink(name, dir_fd):
    # open(O_NOFOLLOW) refuses a symlink with ELOOP, but with ENOTDIR when O_DIRECTORY is set too
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _kind(mode):
    if stat.S_ISLNK(mode):
        return 'symlink'
    if stat.S_ISDIR(mode):
        return 'dir'
    return 'file' if stat.S_ISREG(mode) else 'other'


def _listing(dir_fd, where, only=None):
    """[(name, kind)] of the directory dir_fd, sorted, kind one of symlink, dir, file, other; only: just
    that name, if it exists. where names the directory for the error of one too large."""
    if only is not None:
        try:
            return [(only, _kind(os.stat(only, dir_fd=dir_fd, follow_symlinks=False).st_mode))]
        except FileNotFoundError:
            return []
    listing = []
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            if len(listing) == MAX_ENTRIES:  # a hostile directory must not cost unbounded memory
                raise LvdiffError('%s holds more than %d entries, more than a backup repository directory may '
                                  'hold: nothing was scanned' % (where, MAX_ENTRIES))
            try:
                if entry.is_symlink():
                    kind = 'symlink'
                elif entry.is_dir(follow_symlinks=False):
                    kind = 'dir'
                elif entry.is_file(follow_symlinks=False):
                    kind = 'file'
                else:
                    kind = 'other'
            except FileNotFoundError:  # removed meanwhile (a prune)
                continue
            listing.append((entry.name, kind))
    return sorted(listing)


class _Scan:
    def __init__(self, root):
        self.root = root
        self.found = {'volumes': {}, 'partial': [], 'misplaced': [], 'unreadable': []}

    def misplaced(self, rel, why):
        self.found['misplaced'].append((_shown(rel), why))

    def unreadable(self, rel, message):
        self.found['unreadable'].append((_shown(rel), message))

    def subdirs(self, dir_fd, parents, only):
        """(name, fd) of each directory of the next level in dir_fd (only: just that one); each fd is
        closed when the caller asks for the next."""
        level = LEVELS[len(parents)]
        where = os.path.join(self.root, *parents)
        for name, kind in _listing(dir_fd, where, only):
            rel = '/'.join(parents + (name,))
            if kind == 'symlink':
                self.misplaced(rel, 'symlink')
                continue
            if kind != 'dir':
                self.misplaced(rel, 'not a directory (%s directories belong here)' % level)
                continue
            if not is_name(name):
                self.misplaced(rel, 'not a %s name' % level)
                continue
            try:
                fd = os.open(name, _OPEN_DIR, dir_fd=dir_fd)
            except FileNotFoundError:
                continue
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):  # swapped since the listing
                    self.misplaced(rel, 'symlink' if _is_symlink(name, dir_fd) else 'not a directory')
                else:
                    self.unreadable(rel, 'cannot open: %s' % e.strerror)
                continue
            try:
                yield name, fd
            finally:
                os.close(fd)

    def volume(self, dir_fd, place):
        backups = []
        for name, kind in _listing(dir_fd, os.path.join(self.root, *place)):
            rel = '/'.join(place + (name,))
            if kind == 'symlink':
                self.misplaced(rel, 'symlink')
            elif kind == 'dir':
                self.misplaced(rel, 'a directory among the backup files')
            elif kind == 'other':
                self.misplaced(rel, 'not a regular file')
            elif _PARTIAL.match(name):
                self.found['partial'].append(rel)
            elif not _BACKUP_FILE.match(name) or _name_time(name[:16]) is None:
                self.misplaced(rel, 'not a backup file name (%s)' % BACKUP_NAME_HINT)
            else:
                backup = self.backup(dir_fd, place, name, rel)
                if backup is not None:
                    backups.append(backup)
        if backups:
            self.found['volumes'][place] = sorted(backups, key=lambda b: (b['created'], b['id']))

    def backup(self, dir_fd, place, name, rel):
        try:
            header, st = _read_header(dir_fd, name)
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno == errno.ELOOP:
                self.misplaced(rel, 'symlink')
            else:
                self.unreadable(rel, 'cannot read: %s' % e.strerror)
            return None
        except LvdiffError as e:
            self.unreadable(rel, e.msg)
            return None
        if header is None:
            self.misplaced(rel, 'not a regular file')
            return None
        why = _contradiction(header, place, name)
        if sum(len(k) + len(v) for k, v in header.pairs.items()) > MAX_KEPT_PAIRS:
            why = 'its header pairs hold more than the %d characters a backup repository keeps' % MAX_KEPT_PAIRS
        if why:
            self.misplaced(rel, why)
            return None
        created = header.created or _name_time(name[:16]).strftime(ISO_FORMAT)
        base = header.base or {}
        entry = {'id': rel, 'path': os.path.join(self.root, *(place + (name,))),
                 'host': place[0], 'vg': place[1], 'lv': place[2], 'created': created, 'time': created,
                 'full': header.base is None, 'base': None, 'volume_uuid': header.volume['uuid'],
                 'base_uuid': base.get('uuid'), 'volume_size': header.volume['size'],
                 'chunk_size': header.chunk_size, 'file_size': st.st_size, 'format': header.format,
                 'pairs': dict(header.pairs), 'device': st.st_dev, 'inode': st.st_ino}
        entry.update(sealing(header))  # compression, encryption, key_id: from the header, no key needed
        return entry


def _read_header(dir_fd, name):
    """(header, fstat) of the diff file name in dir_fd, opened without following a symlink; only
    the header is read. (None, fstat) if it is not a regular file (swapped since the listing)."""
    fd = os.open(name, _OPEN_FILE, dir_fd=dir_fd)
    with io.FileIO(fd, 'rb') as raw:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, st
        with open_reader(io.BufferedReader(raw, _HEADER_BUFFER)) as reader:
            return reader.header, st


def _contradiction(header, place, name):
    """Why the header contradicts where the file is or what its name says, or None."""
    said = [header.pairs.get(k) for k in PAIR_KEYS]
    if any(s is not None and s != p for s, p in zip(said, place)):
        return 'its header pairs place it in %s' % '/'.join(
            _shown(s[:MAX_NAME]) if s is not None else p for s, p in zip(said, place))
    kind = name[17:21]
    if (kind == 'full') != (header.base is None):
        return 'its name says %s, its header is %s' % (
            kind, 'a full image' if header.base is None else 'an incremental')
    if header.created is not None:
        when = parse_time(header.created)
        if when is None:
            return 'its header time %r is not YYYY-mm-ddTHH:MM:SSZ' % (header.created[:40],)
        if when.strftime(NAME_TIME_FORMAT) != name[:16]:
            return 'its name says created %s, its header %s' % (name[:16], header.created)
    return None


def scan(root, host=None, vg=None, lv=None):
    """The backups under root (only host's, vg's, lv's when given), from their headers alone:
    {'volumes': {(host, vg, lv): [backup, ...] oldest first}, 'partial': [rel path], 'misplaced':
    [(rel path, why)], 'unreadable': [(rel path, message)]}. A backup is a dict: id (its path
    relative to root, also its retention id), path, host, vg, lv, created and time (the header's ISO
    time), full, base (None: link() fills it), volume_uuid, base_uuid, volume_size, chunk_size,
    file_size, format, pairs (the header's), device and inode (verify_chain sees a replaced file)."""
    for name, level in zip((host, vg, lv), LEVELS):
        if name is not None:
            check_name(name, level)
    walk = _Scan(root)
    root_fd = _open_root(root)
    try:
        for h, host_fd in walk.subdirs(root_fd, (), host):
            for v, vg_fd in walk.subdirs(host_fd, (h,), vg):
                for lv_name, lv_fd in walk.subdirs(vg_fd, (h, v), lv):
                    walk.volume(lv_fd, (h, v, lv_name))
    except OSError as e:
        raise LvdiffError('scanning the backup repository %s failed: %s' % (root, e.strerror))
    finally:
        os.close(root_fd)
    found = walk.found
    found['partial'].sort()
    found['misplaced'].sort()
    found['unreadable'].sort()
    return found


# --- chains -----------------------------------------------------------------------------------


def _link(backups):
    """link's work, with the duplicates left in the backups (a duplicate named as a point still restores)."""
    by_uuid = {}
    for b in sorted(backups, key=lambda b: (os.path.basename(b['id']), b['id']), reverse=True):
        by_uuid.setdefault(b['volume_uuid'], []).append(b)
    duplicates = []
    for uuid, same in by_uuid.items():
        kept = same[0]  # the newest name
        for other in same[1:]:
            if (other['file_size'], other['base_uuid'], other['volume_size']) != (
                    kept['file_size'], kept['base_uuid'], kept['volume_size']):
                raise LvdiffError('%s and %s both hold volume %s but are not copies of one diff (%d and %d bytes, '
                                  'bases %s and %s): keep the right one, remove the other'
                                  % (other['id'], kept['id'], _said(uuid), other['file_size'], kept['file_size'],
                                     _said(other['base_uuid']), _said(kept['base_uuid'])))
            duplicates.append((other['id'], kept['id']))
    kept_of = dict((uuid, same[0]['id']) for uuid, same in by_uuid.items())
    linked, orphans = [], []
    for b in backups:
        b = dict(b)
        if b['full']:
            b['base'] = None
        elif b['base_uuid'] in kept_of:
            b['base'] = kept_of[b['base_uuid']]
        else:
            b['base'] = MISSING_BASE % _said(b['base_uuid'])
            orphans.append(b['id'])
        linked.append(b)
    _refuse_loops(linked)
    linked.sort(key=lambda b: (b['created'], b['id']))
    return linked, sorted(orphans), sorted(duplicates)


def _refuse_loops(linked):
    """Hostile headers could make bases loop (A based on B based on A): no chain would reach a full image.
    Each backup is walked once: a walk stops at one that an earlier walk ended well."""
    by_id = dict((b['id'], b) for b in linked)
    ends_well = set()
    for b in linked:
        path = []
        on_path = set()
        while b is not None and b['id'] not in ends_well:
            if b['id'] in on_path:
                raise LvdiffError('the chain of %s loops: %s is its own ancestor' % (path[0]['id'], b['id']))
            path.append(b)
            on_path.add(b['id'])
            b = by_id.get(b['base'])
        ends_well.update(on_path)


def _walk(backup, by_id):
    """The chain of backup, newest first, as far as it goes: to a full image, or to the backup whose
    base is missing."""
    chain = [backup]
    while chain[-1]['base'] in by_id:
        chain.append(by_id[chain[-1]['base']])
    return chain


def link(backups):
    """(backups, orphans, duplicates) of one volume's backups: each backup copied with 'base' = the id of
    the backup whose volume_uuid is its base_uuid (None for a full image; for an orphan, whose base is
    in none, MISSING_BASE % base_uuid, never an id), oldest first: _retention.select's input. orphans:
    their ids. Two files of one volume UUID: copies of one diff (same size and base) leave the newer name
    and make the older one a duplicate, [(duplicate id, id kept)], not in backups; else LvdiffError."""
    linked, orphans, duplicates = _link(backups)
    dropped = set(d for d, kept in duplicates)
    return [b for b in linked if b['id'] not in dropped], orphans, duplicates


def resolve(backups, point):
    """The chain [full image, ..., backup] that restores point, from one volume's backups (scan's):
    point = 'latest'; an ISO time 'YYYY-mm-ddTHH:MM:SSZ' (the newest backup created at or before
    it); a file name or id; or {'pair': (key, value)} (the newest backup whose header has that pair).
    The backups are returned linked (see link)."""
    places = sorted(set('%s/%s/%s' % (b['host'], b['vg'], b['lv']) for b in backups))
    if len(places) > 1:
        raise LvdiffError('resolve takes the backups of one volume; these are of %s' % ', '.join(places))
    if not backups:
        raise LvdiffError('there is no backup to resolve %r in' % (point,))
    linked, orphans, duplicates = _link(backups)
    by_id = dict((b['id'], b) for b in linked)
    dropped = set(d for d, kept in duplicates)
    candidates = [b for b in linked if b['id'] not in dropped]  # oldest first
    backup = _point(candidates, linked, point)
    chain = _walk(backup, by_id)
    if chain[-1]['base'] is not None:
        broken = chain[-1]
        at = '' if broken is backup else ' at %s' % broken['id']
        raise LvdiffError('the chain of %s breaks%s: its base (volume %s) is not in the repository'
                          % (backup['id'], at, _said(broken['base_uuid'])))
    chain.reverse()
    for base, b in zip(chain, chain[1:]):
        if b['chunk_size'] != base['chunk_size']:
            raise LvdiffError('the chain of %s mixes chunk sizes: %s was made on a pool with %d-byte chunks, '
                              'its base %s with %d-byte chunks'
                              % (backup['id'], b['id'], b['chunk_size'], base['id'], base['chunk_size']))
    return chain


def _point(candidates, linked, point):
    if point == 'latest':
        return candidates[-1]
    if isinstance(point, dict) and set(point) == set(['pair']) and isinstance(point['pair'], (list, tuple)) \
            and len(point['pair']) == 2:
        key, value = point['pair']
        having = [b for b in candidates if b['pairs'].get(key) == value]
        if not having:
            raise LvdiffError('no backup has the header pair %s=%s' % (key, value))
        return having[-1]
    if isinstance(point, str) and _ISO.match(point):
        if parse_time(point) is None:
            raise LvdiffError('%r is not a time: no such day or hour' % (point,))
        before = [b for b in candidates if b['created'] <= point]  # one fixed format: text order is time order
        if not before:
            raise LvdiffError('no backup was created at or before %s: the oldest, %s, was created %s'
                              % (point, candidates[0]['id'], candidates[0]['created']))
        return before[-1]
    if isinstance(point, str) and point:
        named = [b for b in linked if point in (b['id'], os.path.basename(b['id']))]
        if not named:
            raise LvdiffError('unknown backup file %s' % point)
        return named[0]
    raise LvdiffError("cannot resolve %r: use 'latest', a time YYYY-mm-ddTHH:MM:SSZ, a backup file name or "
                      "{'pair': [key, value]}" % (point,))


# --- verifying a chain ----------------------------------------------------------------------------


def _open_backup(root_fd, backup_id):
    """A file object of the backup backup_id below root_fd: every component opened without following
    a symlink, the id checked first (no '..', no absolute path)."""
    parts = backup_id.split('/') if isinstance(backup_id, str) else []
    if len(parts) != 4 or not all(is_name(p) for p in parts[:3]) or not _BACKUP_FILE.match(parts[3]):
        raise LvdiffError('%r is not a backup id (host/vg/lv/%s)' % (backup_id, BACKUP_NAME_HINT))
    fds = [root_fd]
    try:
        for part in parts[:3]:
            fds.append(os.open(part, _OPEN_DIR, dir_fd=fds[-1]))
        fd = os.open(parts[3], _OPEN_FILE, dir_fd=fds[-1])
    except OSError as e:
        symlink = e.errno in (errno.ELOOP, errno.ENOTDIR) and _is_symlink(parts[len(fds) - 1], fds[-1])
        why = 'a symlink is in its path' if symlink else e.strerror
        raise LvdiffError('%s: cannot open: %s' % (backup_id, why))
    finally:
        for fd_open in fds[1:]:
            os.close(fd_open)
    return io.FileIO(fd, 'rb')


def _check_same_file(backup, st):
    """The file is the one scanned, before a byte of it is read: same inode, same size."""
    bid = backup['id']
    if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (backup['device'], backup['inode']):
        raise LvdiffError('%s: replaced since the scan: another file has its name now' % bid)
    if st.st_size != backup['file_size']:
        raise LvdiffError('%s: changed since the scan: %d bytes then, %d now'
                          % (bid, backup['file_size'], st.st_size))


def _check_same_header(backup, header):
    """The header read now says what the scan read (a file rewritten in place keeps its inode)."""
    now = {'volume_uuid': header.volume['uuid'], 'base_uuid': (header.base or {}).get('uuid'),
           'volume_size': header.volume['size'], 'chunk_size': header.chunk_size}
    for key in sorted(now):
        if now[key] != backup[key]:
            raise LvdiffError('%s: changed since the scan: its header says %s %r, the scan read %r'
                              % (backup['id'], key, _said(now[key]), _said(backup[key])))


def _check_link(bid, header, before):
    """header (of the file bid) continues the chain after before ((id, header) or None): from the
    headers actually read."""
    if before is None:
        if header.base is not None:
            raise LvdiffError('%s: the chain starts with an incremental (base volume %s), not a full image'
                              % (bid, _said(header.base['uuid'])))
        return
    prev_id, prev = before
    if header.base is None:
        raise LvdiffError('%s: a full image after %s in the chain' % (bid, prev_id))
    if header.base['uuid'] != prev.volume['uuid']:
        raise LvdiffError('%s: its base is volume %s, but %s, before it in the chain, is volume %s'
                          % (bid, _said(header.base['uuid']), prev_id, _said(prev.volume['uuid'])))
    if header.base['size'] is not None and header.base['size'] != prev.volume['size']:
        raise LvdiffError('%s: its base is %d bytes, but %s, before it in the chain, is %d bytes'
                          % (bid, header.base['size'], prev_id, prev.volume['size']))
    if header.chunk_size != prev.chunk_size:
        raise LvdiffError('%s: made on a pool with %d-byte chunks, but %s, before it in the chain, with '
                          '%d-byte chunks' % (bid, header.chunk_size, prev_id, prev.chunk_size))


@contextlib.contextmanager
def _named(bid):
    """Errors of reading the file bid, for the operator: '<id>: <reason>'."""
    try:
        yield
    except LvdiffError as e:
        if e.msg.startswith(bid + ': '):
            raise
        raise LvdiffError('%s: %s' % (bid, e.msg))
    except OSError as e:
        raise LvdiffError('%s: cannot read: %s' % (bid, e.strerror))


@contextlib.contextmanager
def _reading(root_fd, backup, key=None, strict=True):
    """A reader of backup's file below root_fd, proved to be the file scanned (inode, size, header)
    before the block reads a record; errors of the block are the caller's to name. key: open_reader's (a wrong
    key fails here, named; key, strict: open_reader's)."""
    bid = backup['id']
    with _open_backup(root_fd, bid) as raw:
        with _named(bid):
            _check_same_file(backup, os.fstat(raw.fileno()))
            reader = open_reader(raw, key, strict)
        with reader:
            with _named(bid):
                _check_same_header(backup, reader.header)
            yield reader


@contextlib.contextmanager
def open_backup(root, backup, key=None):
    """A reader of backup's file (resolve's dict) below root, to apply what verify_chain verified: opened
    as verify_chain opens it (no symlink followed, the file scanned; key: open_reader's). Errors of opening it
    and of its header are named '<id>: <reason>'; those of the block are the caller's."""
    root_fd = _open_root(root)
    try:
        with _reading(root_fd, backup, key) as reader:
            yield reader
    finally:
        os.close(root_fd)


def verify_chain(root, chain, progress=NO_PROGRESS, key=None, decode=None, strict=True):
    """Read every file of chain (resolve's) whole and verify it, before anything is applied: each
    the file scanned (inode, size, header), each link checked again from the headers read. The
    first bad file is named: '<id>: <reason>'. Returns {'bytes': total file bytes, 'files': n,
    'sha1s': [sha1 of each file], 'summaries': [_diffio's summary of each file, without its header]}.
    progress (_progress's) is told the bytes read of the whole chain. key, strict: open_reader's (given a
    key, a plain file is refused unless strict is False, for a report); decode: _diffio.verify's (None: an
    encrypted file without the key is verified keylessly, its summary's decoded false; True: it is refused, for
    a restore)."""
    if not chain:
        raise LvdiffError('an empty chain: nothing to verify')
    root_fd = _open_root(root)
    done = {'bytes': 0, 'files': 0, 'sha1s': [], 'summaries': []}
    before = None
    try:
        for backup in chain:
            bid = backup['id']
            with _reading(root_fd, backup, key, strict) as reader:
                with _named(bid):
                    _check_link(bid, reader.header, before)
                    checked = verify(reader, progress, done['bytes'], decode)
            before = (bid, reader.header)
            done['bytes'] += checked['size']
            done['files'] += 1
            done['sha1s'].append(checked['sha1'])
            done['summaries'].append(dict((k, v) for k, v in checked.items() if k != 'header'))
    finally:
        os.close(root_fd)
    return done

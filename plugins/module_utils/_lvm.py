# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""LVM: looking up thin volumes and pools, and the few changes lvdiff/lvpatch make."""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading

from ansible_collections.lvdiff.thin.plugins.module_utils._chunkcopy import MAX_OFFSET
from ansible_collections.lvdiff.thin.plugins.module_utils._command import wait_for_children
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import CommandError, LvdiffError

_FIELDS = ('lv_name,vg_name,pool_lv,thin_id,lv_uuid,lv_size,chunk_size,lv_attr,lv_tags,lv_path,'
           'transaction_id,data_percent,vg_extent_size')
# Tags we put on volumes: where a replica came from, and which diff made it.
TAG_ORIGIN = 'lvdiff_origin:'
TAG_DIFF = 'lvdiff_sha1:'
# Suffix of lvpatch's temporary volume: never anyone else's, so a leftover one can be removed.
TMP_SUFFIX = '-lvpatch-tmp'
# Where LVM puts the device links of active volumes (its devices/dir): DEV_DIR/VG/LV.
DEV_DIR = '/dev'
# fullmatch, not match with $: '$' also matches before a final newline.
_NAME = re.compile(r'[A-Za-z0-9+_.][A-Za-z0-9+_.-]*')
_TAG = re.compile(r'[A-Za-z0-9_+.:=!#&/-]+')  # LVM's tag characters (also '@' but not first)
# Name lengths lvm2 (2.03.16) accepts, measured: "VG/LV" at most 125 characters (beyond: "Full LV
# name ... is too long", "LV name ... length N is not supported"); and the device-mapper name of an
# active volume, "VG-LV" with each '-' doubled, at most 127 (DM_NAME_LEN; beyond, lvcreate fails
# with "Failed to activate thin").
_FULL_NAME_MAX = 125
_DM_NAME_MAX = 127


def dm_name(vg, lv):
    """The device-mapper name of VG/LV: each '-' in a name is doubled."""
    return '%s-%s' % (vg.replace('-', '--'), lv.replace('-', '--'))


def device_path(vg, name):
    return os.path.join(DEV_DIR, vg, name)


def check_name_length(vg, name, what='volume'):
    """Refuse, before LVM is called, a name too long for LVM or device-mapper."""
    full = '%s/%s' % (vg, name)
    dm = dm_name(vg, name)
    if len(full) > _FULL_NAME_MAX or len(dm) > _DM_NAME_MAX:
        raise LvdiffError('%s name %s is too long for LVM: VG/NAME may have at most %d characters (it has %d), '
                          'its device-mapper name VG-NAME with each - doubled at most %d (it has %d)'
                          % (what, full, _FULL_NAME_MAX, len(full), _DM_NAME_MAX, len(dm)))
    return name


def check_name(kind, name):
    """LVM's own rules, checked before we call it, for a clear message; a name can never
    be taken for an option (no leading '-')."""
    if not isinstance(name, str) or not name or len(name) > 127 or not _NAME.fullmatch(name) \
            or name in ('.', '..'):
        raise LvdiffError('%s %r is not a valid LVM name (letters, digits, + _ . -, not starting with -)'
                          % (kind, name))
    return name


def check_tag(tag):
    if not isinstance(tag, str) or len(tag) > 1024 or not _TAG.fullmatch(tag) or tag[0] == '-':
        raise LvdiffError('%r is not a valid LVM tag (letters, digits, _ + . : = ! # & / -, up to 1024)'
                          % (tag,))
    return tag


def check_size(size):
    """A volume size in bytes for LVM: a positive int. '--size -4096b' would be a relative
    shrink, so nothing else may reach lvcreate or lvresize."""
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_OFFSET:
        raise LvdiffError('refusing volume size %r: not a positive whole number of bytes' % (size,))
    return '%db' % size


def _lv_arg(vg, name, kind='volume'):
    return '%s/%s' % (check_name('volume group', vg), check_name(kind, name))


def _tag_args(add=(), remove=()):
    argv = []
    for t in add:
        argv += ['--addtag', check_tag(t)]
    for t in remove:
        argv += ['--deltag', check_tag(t)]
    return argv


def _not_found(vg, err):
    """Whether lvs failed because vg does not exist: LVM's own line for that, not any
    error that mentions a volume group or something not found."""
    return ('Volume group "%s" not found' % vg) in (line.strip() for line in err.splitlines())


def failure_text(out, err):
    """What LVM said about a failed ``lvs --reportformat json``: its stderr, then the error
    lines of the command log in the JSON report. lvm2 2.03.16 (Debian 12) prints errors such as
    'Volume group "x" not found' on stderr; 2.03.31 (Debian 13) puts them only in the report's
    "log" section on stdout, with stderr empty. out is untrusted text: anything that is not such
    a log adds nothing."""
    lines = [err]
    try:
        log = json.loads(out).get('log')
    except (ValueError, TypeError, AttributeError):
        log = None
    for entry in log if isinstance(log, list) else ():
        if isinstance(entry, dict) and entry.get('log_type') == 'error' and isinstance(entry.get('log_message'), str):
            lines.append('  %s\n' % entry['log_message'].strip())
    return ''.join(lines).strip()  # as LVM prints them on stderr, stripped like it


class LV:
    """One row of ``lvs``; sizes in bytes."""

    def __init__(self, row):
        self.name = row['lv_name']
        self.vg = row['vg_name']
        self.pool = row.get('pool_lv') or None
        self.thin_id = int(row['thin_id']) if row.get('thin_id') else None
        self.uuid = row['lv_uuid']
        self.size = int(row['lv_size'] or 0)
        self.chunk_size = int(row['chunk_size'] or 0)
        self.attr = row['lv_attr']
        if len(self.attr) < 10:
            raise ValueError('lv_attr %r has fewer than 10 characters' % (self.attr,))
        self.tags = [t for t in (row.get('lv_tags') or '').split(',') if t]
        self.path = row.get('lv_path') or device_path(self.vg, self.name)
        self.transaction_id = int(row['transaction_id']) if row.get('transaction_id') else None
        self.data_percent = float(row['data_percent']) if row.get('data_percent') else None
        self.extent_size = int(row.get('vg_extent_size') or 0)

    @property
    def is_thin(self):
        return self.attr[0] == 'V' and self.pool is not None

    @property
    def is_pool(self):
        return self.attr[0] == 't'

    @property
    def active(self):
        return self.attr[4] == 'a'

    @property
    def read_only(self):
        return self.attr[1] == 'r'

    def tag_value(self, prefix):
        for t in self.tags:
            if t.startswith(prefix):
                return t[len(prefix):]
        return None

    @property
    def free_bytes(self):
        """Free data space of a pool."""
        return int(self.size * (100.0 - (self.data_percent or 0.0)) / 100.0)


def rows_of(report):
    """{vg: [row, ...]} of report() ({vg: {name: LV}}): the lvs fields the batched modules return
    (the controller's filters read them with _replicate.rows)."""
    return dict((vg, [{'lv_name': lv.name, 'vg_name': lv.vg, 'lv_uuid': lv.uuid, 'lv_attr': lv.attr,
                       'lv_tags': ','.join(lv.tags), 'lv_size': str(lv.size), 'pool_lv': lv.pool or '',
                       'thin_id': '' if lv.thin_id is None else str(lv.thin_id)}
                      for lv in sorted(lvs.values(), key=lambda lv: lv.name)])
                for vg, lvs in report.items())


def thin_in(lvs, vg, name, what='volume'):
    """The thin volume vg/name in lvs ({name: LV} of vg), or a clear error."""
    check_name(what, name)
    lv = lvs.get(name)
    if lv is None:
        raise LvdiffError('%s %s/%s does not exist' % (what, vg, name))
    if not lv.is_thin:
        raise LvdiffError('%s %s/%s is not a thin volume (lv_attr %s)' % (what, vg, name, lv.attr))
    return lv


def pool_in(lvs, vg, name, of=None):
    """The thin pool vg/name in lvs, or a clear error (of: the thin volume whose pool it is)."""
    pool = lvs.get(name)
    if pool is None or not pool.is_pool:
        if of is not None:
            raise LvdiffError('thin pool %s/%s of %s not found' % (vg, name, of))
        raise LvdiffError('thin pool %s/%s does not exist' % (vg, name))
    return pool


def _parse(out):
    try:
        return [LV(r) for r in json.loads(out)['report'][0]['lv']]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        raise CommandError('cannot read the output of lvs: %s: %s' % (type(e).__name__, e), stdout=out[:4096])


class Lvm:
    def __init__(self, runner):
        self.runner = runner

    def lvs(self, vg):
        """{name: LV} for every LV in vg (hidden ones included)."""
        check_name('volume group', vg)
        rc, out, err = self.runner.run(['lvs', '-a', '--reportformat', 'json', '--units', 'b', '--nosuffix',
                                        '-o', _FIELDS, vg], check=False)
        if rc != 0:
            said = failure_text(out, err)
            if _not_found(vg, said):
                raise LvdiffError('volume group %s does not exist on this host' % vg, stderr=said)
            raise CommandError('lvs failed for volume group %s: %s' % (vg, said), rc=rc, stderr=err)
        return dict((lv.name, lv) for lv in _parse(out))

    def report(self, vgs):
        """{vg: {name: LV}} for several VGs with one lvs (the batched modules: one lvs per host).
        A VG that does not exist is left out; the caller names it in its error."""
        vgs = sorted(set(check_name('volume group', vg) for vg in vgs))
        if not vgs:
            return {}
        rc, out, err = self.runner.run(['lvs', '-a', '--reportformat', 'json', '--units', 'b', '--nosuffix',
                                        '-o', _FIELDS] + vgs, check=False)
        if rc != 0:  # which VG failed, and how: one lvs each
            found = {}
            for vg in vgs:
                try:
                    found[vg] = self.lvs(vg)
                except LvdiffError as e:
                    if not _not_found(vg, e.details.get('stderr', '')):
                        raise
            return found
        found = dict((vg, {}) for vg in vgs)
        for lv in _parse(out):
            found.setdefault(lv.vg, {})[lv.name] = lv
        return found

    def thin(self, vg, name, what='volume'):
        """The thin volume vg/name, or a clear error."""
        check_name(what, name)
        return thin_in(self.lvs(vg), vg, name, what)

    def pool_of(self, lv):
        return pool_in(self.lvs(lv.vg), lv.vg, lv.pool, of=lv.name)

    def pool(self, vg, name):
        check_name('thin pool', name)
        return pool_in(self.lvs(vg), vg, name)

    def _lvm(self, *argv):
        return self.runner.run(list(argv))

    def activate(self, lv):
        self.set_active(lv.vg, [lv.name], True)

    def deactivate(self, lv):
        self.set_active(lv.vg, [lv.name], False)

    def set_active(self, vg, names, active):
        """Activate (activation skip ignored) or deactivate vg's volumes names with one lvchange."""
        if names:
            self._lvm('lvchange', '--activate', *(['y', '--ignoreactivationskip'] if active else ['n']),
                      *[_lv_arg(vg, name) for name in names])

    def deactivate_all(self, names_by_vg):
        """{vg: names} deactivated with one lvchange per VG (the batched modules' end of run). A VG that
        fails leaves its volumes active, nothing worse: its message is returned for a warning."""
        failed = []
        for vg, names in sorted(names_by_vg.items()):
            names = sorted(set(names))
            try:
                self.set_active(vg, names, False)
            except LvdiffError as e:
                failed.append('could not deactivate %s in %s: %s' % (', '.join(names), vg, e.msg))
        return failed

    @contextlib.contextmanager
    def active(self, *lvs):
        """Activate inactive (or activation-skip) volumes for the block; restore their state after."""
        activated = []
        try:
            for lv in lvs:
                if lv is not None and not lv.active and lv not in activated:
                    self.activate(lv)
                    activated.append(lv)
            yield
        finally:
            for lv in reversed(activated):
                self.deactivate(lv)

    # Every name, tag and size is checked here, at the boundary: nothing reaches LVM's argv
    # that it could take for an option or a relative size.
    def snapshot(self, vg, base, name, tags=(), read_only=False, active=False):
        """A thin snapshot of vg/base: by default writable and activatable (lvpatch's temporary volume);
        read_only: read-only with LVM's default activation skip (a backup's snapshot, kept inactive), and
        active: activated all the same by the same command (send reads it next)."""
        mode = ['--permission', 'r'] if read_only else ['--setactivationskip', 'n']
        if active:
            mode.append('--ignoreactivationskip')
        self._lvm('lvcreate', '--snapshot', *mode, '--name', check_name('volume', name),
                  *_tag_args(tags), _lv_arg(vg, base))

    def create_thin(self, vg, pool, name, size, tags=()):
        self._lvm('lvcreate', '--thin', '--virtualsize', check_size(size), '--name', check_name('volume', name),
                  *_tag_args(tags), _lv_arg(vg, pool, 'thin pool'))

    def resize(self, vg, name, size):
        self._lvm('lvresize', '--yes', '--force', '--size', check_size(size), _lv_arg(vg, name))

    def rename(self, vg, old, new):
        self._lvm('lvrename', check_name('volume group', vg), check_name('volume', old), check_name('volume', new))

    def change(self, vg, name, add=(), remove=(), permission=None, activation_skip=None):
        """One lvchange of vg/name's properties: tags added (add) and deleted (remove), permission V(r) or
        V(rw), the activation skip flag set (True) or cleared (False); None leaves that alone."""
        argv = _tag_args(add, remove)
        if permission is not None:
            if permission not in ('r', 'rw'):
                raise LvdiffError('permission %r is neither r nor rw' % (permission,))
            argv += ['--permission', permission]
        if activation_skip is not None:
            argv += ['--setactivationskip', 'y' if activation_skip else 'n']
        self._lvm('lvchange', *argv, _lv_arg(vg, name))

    def remove(self, vg, *names):
        """Remove vg's volumes names with one lvremove."""
        self._lvm('lvremove', '--yes', '--force', *[_lv_arg(vg, name) for name in names])

    @contextlib.contextmanager
    def scratch_volume(self, vg, name, lvs=None):
        """A temporary volume for what becomes vg/name only when complete (lvpatch's): yields its name,
        name + TMP_SUFFIX, for the block to create and fill. A leftover of a run killed with SIGKILL is
        removed first (the caller holds name's lock; the suffix is never anyone else's); the block's
        success renames it to name; any failure, a signal included, removes it. lvs: vg's {name: LV}
        if the caller has it."""
        tmp = name + TMP_SUFFIX
        if tmp in (self.lvs(vg) if lvs is None else lvs):
            self.remove(vg, tmp)
        may_exist = True  # from here on, even if a signal interrupts the lvcreate that makes it
        try:
            yield tmp
            self.rename(vg, tmp, name)
            may_exist = False
        finally:
            if may_exist:
                # A signal reaches the main thread only, while a command of its own may still run: wait
                # for it. In a worker thread, waiting for any child would reap other threads' commands.
                if threading.current_thread() is threading.main_thread():
                    wait_for_children()
                if tmp in self.lvs(vg):
                    self.remove(vg, tmp)

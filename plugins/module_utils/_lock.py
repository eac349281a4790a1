# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Host-local locks (the pool's metadata snapshot, lvpatch's volume): flocked files in a
directory only the running user can enter. Not /run/lock, where every user may plant a
symlink named like a lock (making root create a file anywhere) or hold the lock."""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time

from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError

LOCK_DIR = '/run/lvdiff.thin'


def private_dir(path):
    """Open the lock directory, made with mode 0700 if missing. Refuse a symlink, a
    non-directory, or one that is not ours or open to group or others."""
    try:
        os.mkdir(path, 0o700)  # atomic: never exists with a wider mode
    except FileExistsError:
        pass
    except OSError as e:
        raise LvdiffError('cannot create the lock directory %s: %s' % (path, e.strerror))
    try:  # O_PATH: fstat and openat need no read permission, which a foreign one may deny
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise LvdiffError('refusing the lock directory %s: %s (a symlink or not a directory is refused; '
                          'remove it)' % (path, e.strerror))
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        os.close(fd)
        raise LvdiffError('refusing the lock directory %s: owned by uid %d with mode %03o, it must be '
                          "uid %d's with no group or other access (0700); remove it"
                          % (path, st.st_uid, stat.S_IMODE(st.st_mode), os.geteuid()))
    return fd


def _open_lock_file(lock_dir, name):
    path = os.path.join(lock_dir, name)
    dfd = private_dir(lock_dir)
    try:  # relative to the checked directory, so it cannot be swapped meanwhile
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
    except OSError as e:
        raise LvdiffError('cannot open the lock file %s (a symlink is refused): %s' % (path, e.strerror))
    finally:
        os.close(dfd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_nlink != 1:
        os.close(fd)
        raise LvdiffError('refusing the lock file %s: not a regular file of uid %d with one link '
                          '(uid %d, mode %o, %d links); remove it'
                          % (path, os.geteuid(), st.st_uid, st.st_mode, st.st_nlink))
    return fd, path


def acquire(name, busy, timeout=0.0, lock_dir=LOCK_DIR):
    """The fd of lock file ``name``, flocked; the caller closes it to unlock. The file is
    never removed: removing a locked file would let two runs lock two files. ``busy`` is
    the message when another run still holds it after ``timeout`` seconds."""
    fd, path = _open_lock_file(lock_dir, name)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:  # EWOULDBLOCK: another run holds the lock
                if time.monotonic() >= deadline:
                    raise LvdiffError('%s (lock file %s)' % (busy, path))
            except OSError as e:
                raise LvdiffError('cannot lock %s: %s' % (path, e.strerror))
            time.sleep(0.2)
    except BaseException:  # incl. Terminated while waiting
        os.close(fd)
        raise


@contextlib.contextmanager
def held(name, busy, timeout=0.0, lock_dir=LOCK_DIR):
    """Hold lock file ``name`` for the block (see acquire)."""
    fd = acquire(name, busy, timeout, lock_dir)
    try:
        yield
    finally:
        os.close(fd)

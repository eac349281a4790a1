# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Domain errors. Utilities raise these; a module's main() turns them into fail_json."""

from __future__ import annotations

import contextlib
import signal

from ansible.module_utils.basic import missing_required_lib


class LvdiffError(Exception):
    """Base of every expected failure: the message is meant for the operator."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details


class FormatError(LvdiffError):
    """A diff file that is corrupt, truncated, of an unknown format or version."""


class WrongKeyError(LvdiffError):
    """An encrypted diff and a key or passphrase that is not the one it was made with: never "corrupt"."""


class MissingLibraryError(LvdiffError):
    """A Python library that only some diffs need (zstandard to compress, cryptography to encrypt)
    is not installed. lib: its name for missing_required_lib; exception: the ImportError's text."""

    def __init__(self, lib, needed_for, import_error=None):
        super().__init__('%s needs the Python library %s, which is not installed: %s' % (
            needed_for, lib, _INSTALL_HINTS.get(lib, 'install it')))
        self.lib = lib
        self.needed_for = needed_for
        self.exception = str(import_error) if import_error is not None else None


# Where each optional library comes from on the managed host's usual systems.
_INSTALL_HINTS = {
    'zstandard': 'install python3-zstandard (Debian, Ubuntu; EPEL on RHEL-family hosts) or pip install zstandard',
    'cryptography': 'install python3-cryptography (Debian, Ubuntu, RHEL-family) or pip install cryptography',
}


class BaseMismatchError(LvdiffError):
    """The target's base does not hold the data the diff was made against."""


class CommandError(LvdiffError):
    """An external command (lvs, dmsetup, thin_delta...) failed or is missing."""


class MetadataSnapshotHeldError(LvdiffError):
    """The pool's one metadata snapshot is held by someone else."""


class Terminated(LvdiffError):
    """SIGTERM or SIGHUP arrived while a terminate_gracefully() block ran."""


def _raise_terminated(signum, frame):
    raise Terminated('terminated by signal %d; cleaned up what was started' % signum)


@contextlib.contextmanager
def on_signals(handler):
    """handler(signum, frame) for SIGTERM and SIGHUP during the block, the handlers before restored
    after. Only the main thread can install handlers: elsewhere this does nothing."""
    old = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            old[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: whoever owns it handles signals
            break
    try:
        yield
    finally:
        for sig, before in old.items():
            signal.signal(sig, before)


def terminate_gracefully():
    """Turn SIGTERM/SIGHUP into a Terminated exception for the block, so that every
    finally clause (temporary files, volumes, the metadata snapshot) runs."""
    return on_signals(_raise_terminated)


def require_lib(module, name, available, import_error):
    """Ansible's missing-library failure, with its install hint, for a guarded import that failed."""
    if not available:
        module.fail_json(msg=missing_required_lib(name), exception=str(import_error))


def run_module(module, main):
    """Call main(module) with signals made graceful; exit_json its result, or
    fail_json with an LvdiffError's message and details (no traceback).

    The result is what the module returns and its docs say: AnsibleModule's add_path_info
    would otherwise add (and overwrite) size, mode, state, owner... from a stat of whatever
    the result's ``dest`` or ``path`` names (lvdiff's old dest in check mode, lvpatch's
    /dev symlink)."""
    module.add_path_info = lambda kwargs: kwargs
    try:
        with terminate_gracefully():
            result = main(module)
    except MissingLibraryError as e:  # zstandard or cryptography, for a diff that needs it: Ansible's own words
        hint = _INSTALL_HINTS.get(e.lib, 'install it')
        module.fail_json(msg='%s %s.' % (missing_required_lib(e.lib, reason='for ' + e.needed_for),
                                         hint[:1].upper() + hint[1:]), exception=e.exception)
    except LvdiffError as e:
        details = dict((k, v) for k, v in e.details.items() if isinstance(v, (str, int, float, list)))
        module.fail_json(msg=e.msg, **details)
    module.exit_json(**result)

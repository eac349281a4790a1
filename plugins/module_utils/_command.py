# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Running external commands with argv lists: captured, or streamed for large outputs."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile

from ansible_collections.lvdiff.thin.plugins.module_utils._errors import CommandError

C_LOCALE = {'LC_ALL': 'C', 'LANGUAGE': 'C'}
# How much of a failing command's output goes into an error message (its tail: the
# last lines say what went wrong) and how much of a streamed command's stderr is kept.
_MSG_TAIL = 2000
_STDERR_TAIL = 64 << 10


def _failed(argv, rc, text):
    """The message of a command that failed: its argv quoted as a shell would need, and
    the tail of what it printed."""
    text = text.strip()
    if len(text) > _MSG_TAIL:
        text = '...' + text[-_MSG_TAIL:]
    return '%s failed (rc=%d): %s' % (shlex.join(argv), rc, text)


def wait_for_children():
    """Wait until every child process has exited. A signal can interrupt us while a command runs;
    the command still finishes its work (an interrupted lvcreate still creates its volume), so
    cleanup waits for it instead of racing it."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


class Runner:
    """Runs commands for module_utils code.

    In a module, wraps ``AnsibleModule.run_command`` and ``get_bin_path``; in tests and
    scripts, plain subprocess. ``stream`` always uses subprocess: thin_dump output can be
    gigabytes, and run_command would hold all of it in memory.
    """

    def __init__(self, module=None, env=None):
        self.module = module
        self.env = dict(C_LOCALE)
        self.env.update(env or {})

    def which(self, name):
        path = self.module.get_bin_path(name) if self.module else shutil.which(name)
        if not path:
            raise CommandError('required command %s not found on this host (install %s)'
                               % (name, _PACKAGE_OF.get(name, name)))
        return path

    def run(self, argv, check=True, data=None):
        """Run argv; return (rc, stdout, stderr) as text. check=True raises on rc != 0."""
        argv = [self.which(argv[0])] + list(argv[1:])
        if self.module:
            rc, out, err = self.module.run_command(argv, environ_update=self.env, data=data,
                                                   binary_data=data is not None)
        else:
            env = dict(os.environ, **self.env)
            # errors='replace': a tool printing invalid UTF-8 must not become a traceback
            proc = subprocess.run(argv, input=data, capture_output=True, text=True, errors='replace',
                                  env=env, check=False)
            rc, out, err = proc.returncode, proc.stdout, proc.stderr
        if check and rc != 0:
            raise CommandError(_failed(argv, rc, err or out), rc=rc, stdout=out, stderr=err, cmd=argv)
        return rc, out, err

    def stream(self, argv):
        """Start argv with its stdout as a pipe; use as a context manager (see Stream)."""
        return Stream([self.which(argv[0])] + list(argv[1:]), dict(os.environ, **self.env))


class Stream:
    """A running command whose stdout is read incrementally.

    On exit the process is waited for (killed first if the reader stopped early or
    failed), and a non-zero exit status raises CommandError with its stderr.
    """

    def __init__(self, argv, env):
        self.argv = argv
        self.env = env
        self.proc = None
        self._err = None

    def __enter__(self):
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self._err,
                                     env=self.env, bufsize=0)
        return self.proc.stdout

    def __exit__(self, exc_type, exc, tb):
        self.proc.stdout.close()
        try:
            rc = self.proc.wait(timeout=5 if exc_type is not None else None)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        # rc < 0: stopped by a signal after we stopped reading (SIGPIPE, or our kill).
        stopped_by_us = exc_type is GeneratorExit or (exc_type is not None and rc < 0)
        # Only the tail: a tool may print any amount to stderr.
        self._err.seek(max(0, self._err.seek(0, os.SEEK_END) - _STDERR_TAIL))
        err = self._err.read().decode('utf-8', 'replace').strip()
        self._err.close()
        if rc != 0 and not stopped_by_us:
            # A failing tool explains a parse error of its partial output better than the parser.
            raise CommandError(_failed(self.argv, rc, err), rc=rc, stderr=err, cmd=self.argv)
        return False


_PACKAGE_OF = {
    'thin_delta': 'thin-provisioning-tools', 'thin_dump': 'thin-provisioning-tools',
    'lvs': 'lvm2', 'lvcreate': 'lvm2', 'dmsetup': 'dmsetup (lvm2)',
}

"""The two generations of thin-provisioning-tools that the metadata tests run against, every time:

- ``0.9``: the system's C++ tools (Debian 12's 0.9.0, installed by make deps), found on PATH;
- ``1.x``: the Rust tools (Debian 13's 1.1.x), unpacked from the pinned .deb by
  tests/setup/thin-tools-1x.sh (make deps) into tests/output/thin-tools/1.x/bin.

``path_for(generation)`` is the PATH under which thin_delta, thin_dump and thin_restore are that
generation's, checked by asking the tool its version; a generation that is missing or is not
what it claims raises ``ToolsMissing`` (the tests fail, they never skip).
"""

import os
import subprocess

GENERATIONS = ('0.9', '1.x')
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
ONE_X_BIN = os.path.join(REPO, 'tests', 'output', 'thin-tools', '1.x', 'bin')
_SBIN = ('/usr/local/sbin', '/usr/sbin', '/sbin')
_WANT = {'0.9': '0.9.', '1.x': '1.1.'}


class ToolsMissing(RuntimeError):
    pass


def version(path_value):
    """What ``thin_delta --version`` prints under PATH=path_value (stripped)."""
    out = subprocess.run(['thin_delta', '--version'], env=dict(os.environ, PATH=path_value),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    return out.stdout.strip()


def path_for(generation):
    """PATH with that generation's thin tools first (the system's sbin directories always on it)."""
    base = [d for d in os.environ.get('PATH', os.defpath).split(os.pathsep) if d and d != ONE_X_BIN]
    base += [d for d in _SBIN if d not in base]
    if generation == '1.x':
        if not os.path.isfile(os.path.join(ONE_X_BIN, 'thin_delta')):
            raise ToolsMissing('thin-provisioning-tools 1.x not found in %s: run make deps '
                               '(tests/setup/thin-tools-1x.sh)' % ONE_X_BIN)
        base.insert(0, ONE_X_BIN)
    elif generation != '0.9':
        raise ValueError('no thin tools generation %r' % (generation,))
    value = os.pathsep.join(base)
    try:
        got = version(value)
    except OSError as e:
        raise ToolsMissing('thin_delta (%s) does not run: %s; run make deps' % (generation, e))
    if not got.startswith(_WANT[generation]):
        raise ToolsMissing('thin_delta for generation %s says %r, expected %sx; run make deps'
                           % (generation, got, _WANT[generation]))
    return value

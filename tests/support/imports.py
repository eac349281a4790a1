"""What an import pulls in: for the tests that prove a backup host needs Python only."""

import json
import os
import subprocess
import sys


def module_utils_loaded(statement, blocked=('lxml', 'lxml.etree', 'paramiko')):
    """The collection's module_utils (names like '_repository') that statement loads in a fresh Python in
    which the modules blocked cannot be imported."""
    code = '\n'.join([
        'import json, sys',
        'for name in %r: sys.modules[name] = None' % (tuple(blocked),),
        statement,
        "mu = 'ansible_collections.lvdiff.thin.plugins.module_utils.'",
        'print(json.dumps(sorted(m[len(mu):] for m in sys.modules if m.startswith(mu))))'])
    out = subprocess.run([sys.executable, '-c', code], env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=True)
    return set(json.loads(out.stdout))

"""Imports follow the layers (issue 10, point 4): reading a diff never loads the thin-tools
parser (_thinmeta) or lxml, so lvdiff_info and lvpatch's reading path stay light."""
import os
import subprocess
import sys

import pytest

READERS = ['plugins.module_utils._codec', 'plugins.module_utils._format', 'plugins.module_utils._hyperlayer',
           'plugins.module_utils._diffio', 'plugins.module_utils._plan', 'plugins.modules.lvdiff_info']


@pytest.mark.parametrize('module', READERS)
def test_diff_reading_does_not_import_the_thin_tools_parser(module):
    code = ('import sys, ansible_collections.lvdiff.thin.%s\n'
            'print(sorted(m for m in sys.modules if m == "lxml" or m.startswith("lxml.") '
            'or m.endswith("._thinmeta")))' % module)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == '[]', '%s imports %s' % (module, out.stdout.strip())


def test_the_check_itself_sees_thinmeta():
    """The probe above would pass vacuously if it could not see _thinmeta and lxml at all."""
    code = ('import sys, ansible_collections.lvdiff.thin.plugins.module_utils._thinmeta\n'
            'print("lxml" in sys.modules, any(m.endswith("._thinmeta") for m in sys.modules))')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ['True', 'True']

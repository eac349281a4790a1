"""``patch_module_args`` for every ansible-core that make test-matrix runs (2.16 to 2.19).

ansible-core 2.19 ships it as ``ansible.module_utils.testing.patch_module_args``, used when present;
older releases read a module's arguments from ``ansible.module_utils.basic._ANSIBLE_ARGS`` (JSON
bytes), which is what the stand-in sets, and restores, here."""

import contextlib
import json

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    from ansible.module_utils import basic

    @contextlib.contextmanager
    def patch_module_args(args=None):
        old = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = json.dumps({'ANSIBLE_MODULE_ARGS': args or {}}).encode('utf-8')
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = old

__all__ = ['patch_module_args']

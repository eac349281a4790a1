"""Test guest only: a bytecode cache for modules imported from zip files (Ansible's module payloads).

Ansible ships every task as a new zip, so Python's own pyc cache never applies and each task compiles
ansible.module_utils from source: about 2.5 s per task under QEMU's software emulation (0.1 s on real
hardware). Code is cached under the SHA-256 of the interpreter's magic number and the source, and its
file name is set to the current path, so what runs is exactly what compile() would have returned.
"""
import _imp
import marshal
import os
import zipimport

_DIR = '/var/cache/lvdiff-guest-pyc'
_compile_source = zipimport._compile_source


def _cached_compile_source(pathname, source):
    import hashlib  # here, not at start-up: every python3 in the guest loads this file
    from importlib.util import MAGIC_NUMBER

    path = os.path.join(_DIR, hashlib.sha256(MAGIC_NUMBER + source).hexdigest())
    try:
        with open(path, 'rb') as f:
            code = marshal.loads(f.read())
        _imp._fix_co_filename(code, pathname)
        return code
    except (OSError, ValueError, EOFError, TypeError):
        pass
    code = _compile_source(pathname, source)
    try:
        os.makedirs(_DIR, exist_ok=True)
        tmp = '%s.%d' % (path, os.getpid())
        with open(tmp, 'wb') as f:
            f.write(marshal.dumps(code))
        os.replace(tmp, path)
    except OSError:
        pass
    return code


zipimport._compile_source = _cached_compile_source

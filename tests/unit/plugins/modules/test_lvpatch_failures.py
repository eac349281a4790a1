"""lvpatch's cleanup when the device write fails (a full thin pool answers EIO/ENOSPC).

A real pool cannot be made to run out of space in the middle of a write on demand, so the
LVM calls are recorded by a fake; the diff file, its parsing and the writes are real
(the "volume" is a file)."""

import errno
import os

import pytest

from ansible_collections.lvdiff.thin.plugins.module_utils import _lvm
from ansible_collections.lvdiff.thin.plugins.modules import lvpatch

from test_diff_roundtrip import make_diff
from volumes import VolumePair

CS = 4096


class FakeLvm:
    """The LVM side of a target with a base volume 'base' in pool 'pool'."""

    calls = []

    def __init__(self, runner):
        self.device = None

    def _lv(self, name, attr, size, tags=''):
        return _lvm.LV({'lv_name': name, 'vg_name': 'vg', 'pool_lv': 'pool' if attr[0] == 'V' else '',
                        'thin_id': '1', 'lv_uuid': 'U-' + name, 'lv_size': str(size), 'chunk_size': str(CS),
                        'lv_attr': attr, 'lv_tags': tags, 'lv_path': FakeLvm.device, 'transaction_id': '',
                        'data_percent': '1.0', 'discards': 'passdown', 'vg_extent_size': str(CS)})

    def lvs(self, vg):
        FakeLvm.calls.append(('lvs', vg))
        lvs = {'base': self._lv('base', 'Vwi-a-tz--', FakeLvm.size),
               'pool': self._lv('pool', 'twi-aotz--', 1 << 40)}
        if ('snapshot', 'base', 'x-lvpatch-tmp') in FakeLvm.calls:
            lvs['x-lvpatch-tmp'] = self._lv('x-lvpatch-tmp', 'Vwi-a-tz--', FakeLvm.size)
        return lvs

    def thin(self, vg, name, what='volume'):
        return self.lvs(vg)[name]

    def pool_of(self, lv):
        return self.lvs(lv.vg)['pool']

    def snapshot(self, vg, base, name, tags=()):
        FakeLvm.calls.append(('snapshot', base, name))

    def remove(self, vg, name):
        FakeLvm.calls.append(('remove', name))

    def __getattr__(self, name):
        def record(*args, **kw):
            FakeLvm.calls.append((name,) + args)
        return record


@pytest.fixture
def target(tmp_path, monkeypatch):
    base = {c: ('b', c) for c in range(32)}
    src = dict(base)
    src.update({c: ('s', c) for c in range(8, 24)})
    pair = VolumePair(tmp_path, CS, base, src, base_chunks=32, src_chunks=32)
    diff = str(tmp_path / 'd.lvdiff')
    make_diff(pair, diff)
    FakeLvm.calls = []
    FakeLvm.size = pair.base_size
    FakeLvm.device = str(tmp_path / 'device')
    with open(FakeLvm.device, 'wb') as f:
        f.write(open(pair.base, 'rb').read())
    monkeypatch.setattr(lvpatch, 'Lvm', FakeLvm)
    return diff


def test_failed_write_removes_the_temporary_volume(target, run_module, monkeypatch):
    def full_pool(fd, buffers, offset):
        raise OSError(errno.EIO, 'Input/output error')

    monkeypatch.setattr(os, 'pwritev', full_pool)
    rc, res = run_module(lvpatch, {'src': target, 'vg': 'vg', 'base': 'base', 'name': 'x'})
    assert rc == 1
    assert res['msg'].startswith('writing %s failed: [Errno 5] Input/output error (the thin pool may be full)'
                                 % FakeLvm.device)
    assert ('remove', 'x-lvpatch-tmp') == FakeLvm.calls[-1]
    assert not any(c[0] in ('rename', 'tag') for c in FakeLvm.calls)


def test_success_renames_and_tags(target, run_module):
    rc, res = run_module(lvpatch, {'src': target, 'vg': 'vg', 'base': 'base', 'name': 'x'})
    assert rc == 0 and res['changed'] is True
    names = [c[0] for c in FakeLvm.calls]
    assert names.index('tag') < names.index('rename') and 'remove' not in names
    tag_call = [c for c in FakeLvm.calls if c[0] == 'tag'][0]
    assert tag_call[1:3] == ('vg', 'x-lvpatch-tmp')

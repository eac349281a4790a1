"""A scripted LVM host for unit tests of what lvpatch, receive and rotate do: its volumes are files,
so diffs are really applied and contents compared; and chain(), two real diffs to apply."""
from __future__ import annotations

import json
import os
import shutil

from ansible_collections.lvdiff.thin.plugins.module_utils import _lvm
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import CommandError
from ansible_collections.lvdiff.thin.tests.support.diffs import make_diff
from ansible_collections.lvdiff.thin.tests.support.volumes import VolumePair

CS = 4096


def lvm_host(tmp_path, monkeypatch, vgs=('vg',)):
    """An LvmHost whose device files are where _lvm looks for active volumes' devices."""
    host = LvmHost(tmp_path, vgs)
    monkeypatch.setattr(_lvm, 'DEV_DIR', str(host.dir))
    return host


class LvmHost:
    """lvs, lvcreate, lvchange, lvresize, lvrename and lvremove as lvm2 answers them, on a table of
    volumes {vg: {name: dict}} whose devices are files in tmp_path. fail: {command: stderr} makes that
    command fail (rc 5); on_run(argv) is called before each command."""

    def __init__(self, tmp_path, vgs=('vg',)):
        self.dir = tmp_path / 'dev'
        self.dir.mkdir()
        self.vgs = dict((vg, {}) for vg in vgs)
        self.calls = []
        self.fail = {}
        self.on_run = None
        self.uuids = 0
        for vg in vgs:
            self.vgs[vg]['pool'] = {'pool': '', 'size': 1 << 30, 'tags': [], 'ro': False, 'active': True,
                                    'skip': False, 'uuid': 'U-%s-pool' % vg}

    def add(self, vg, name, content=b'', size=None, tags=(), ro=False, active=True, skip=False):
        self.uuids += 1
        self.vgs[vg][name] = {'pool': 'pool', 'size': len(content) if size is None else size, 'tags': list(tags),
                              'ro': ro, 'active': active, 'skip': skip, 'uuid': 'U-%d' % self.uuids}
        with open(self.device(vg, name), 'wb') as f:
            f.write(content)
            f.truncate(self.vgs[vg][name]['size'])

    def device(self, vg, name):
        """Where the volume's data is: DEV_DIR/VG/NAME with _lvm.DEV_DIR set to self.dir (see lvm_host)."""
        (self.dir / vg).mkdir(exist_ok=True)
        return str(self.dir / vg / name)

    def content(self, vg, name):
        with open(self.device(vg, name), 'rb') as f:
            return f.read()

    def state(self, vg, name):
        """(lv_attr, sorted tags) of vg/name."""
        row = self._row(vg, name)
        return row['lv_attr'], sorted(self.vgs[vg][name]['tags'])

    def changes(self):
        return [c for c in self.calls if c[0] != 'lvs']

    def _row(self, vg, name):
        lv = self.vgs[vg][name]
        if not lv['pool']:
            attr = 'twi-aotz--'
        else:
            attr = 'V%si-%s-tz-%s' % ('r' if lv['ro'] else 'w', 'a' if lv['active'] else '-',
                                      'k' if lv['skip'] else '-')
        return {'lv_name': name, 'vg_name': vg, 'pool_lv': lv['pool'], 'thin_id': '1', 'lv_uuid': lv['uuid'],
                'lv_size': str(lv['size']), 'chunk_size': str(CS) if not lv['pool'] else '0', 'lv_attr': attr,
                'lv_tags': ','.join(lv['tags']), 'lv_path': self.device(vg, name), 'transaction_id': '',
                'data_percent': '1.00', 'vg_extent_size': str(CS)}

    def run(self, argv, check=True, data=None):
        argv = list(argv)
        self.calls.append(argv)
        if self.on_run is not None:
            self.on_run(argv)
        if argv[0] in self.fail:
            rc, out, err = 5, '', self.fail[argv[0]]
        elif argv[0] == 'lvs':
            rc, out, err = self._lvs(argv)
        else:
            getattr(self, '_' + argv[0])(argv[1:])
            rc, out, err = 0, '', ''
        if check and rc:
            raise CommandError('%s failed (rc=%d): %s' % (argv[0], rc, err), rc=rc, stderr=err)
        return rc, out, err

    def _lvs(self, argv):
        vgs = argv[argv.index('-o') + 2:]
        missing = [vg for vg in vgs if vg not in self.vgs]
        rows = [self._row(vg, name) for vg in vgs if vg in self.vgs for name in sorted(self.vgs[vg])]
        err = ''.join('  Volume group "%s" not found\n' % vg for vg in missing)
        return (5 if missing else 0), json.dumps({'report': [{'lv': rows}]}), err

    @staticmethod
    def _opts(args):
        opts, rest, i = {}, [], 0
        while i < len(args):
            a = args[i]
            if a in ('--snapshot', '--thin', '--yes', '--force', '--ignoreactivationskip'):
                opts[a] = True
            elif a.startswith('--'):
                opts.setdefault(a, []).append(args[i + 1])
                i += 1
            else:
                rest.append(a)
            i += 1
        return opts, rest

    def _lvcreate(self, args):
        opts, (target,) = self._opts(args)
        vg, src = target.split('/')
        name = opts['--name'][0]
        assert name not in self.vgs[vg]
        if '--snapshot' in opts:
            base = self.vgs[vg][src]
            self.uuids += 1
            lv = dict(base, tags=list(base['tags']), uuid='U-%d' % self.uuids, ro='r' in opts.get('--permission', []),
                      skip=opts.get('--setactivationskip') != ['n'])
            lv['active'] = not lv['skip']
            shutil.copy(self.device(vg, src), self.device(vg, name))
        else:
            self.uuids += 1
            lv = {'pool': src, 'size': int(opts['--virtualsize'][0][:-1]), 'tags': [], 'ro': False, 'active': True,
                  'skip': False, 'uuid': 'U-%d' % self.uuids}
            with open(self.device(vg, name), 'wb') as f:
                f.truncate(lv['size'])
        lv['tags'] += [t for t in opts.get('--addtag', []) if t not in lv['tags']]
        self.vgs[vg][name] = lv

    def _lv(self, target):
        vg, name = target.split('/')
        return self.vgs[vg][name]

    def _lvchange(self, args):
        opts, targets = self._opts(args)
        assert len(targets) == 1 or set(opts) <= {'--activate', '--ignoreactivationskip'}, args
        for target in targets:
            self._change(self._lv(target), opts)

    @staticmethod
    def _change(lv, opts):
        lv['tags'] = [t for t in lv['tags'] if t not in opts.get('--deltag', [])]
        lv['tags'] += [t for t in opts.get('--addtag', []) if t not in lv['tags']]
        if '--permission' in opts:
            lv['ro'] = opts['--permission'] == ['r']
        if '--setactivationskip' in opts:
            lv['skip'] = opts['--setactivationskip'] == ['y']
        if '--activate' in opts:
            assert '--ignoreactivationskip' in opts or not lv['skip'] or opts['--activate'] == ['n']
            lv['active'] = opts['--activate'] == ['y']

    def _lvresize(self, args):
        opts, (target,) = self._opts(args)
        lv = self._lv(target)
        lv['size'] = int(opts['--size'][0][:-1])
        os.truncate(self.device(*target.split('/')), lv['size'])

    def _lvrename(self, args):
        vg, old, new = args
        assert new not in self.vgs[vg]
        self.vgs[vg][new] = self.vgs[vg].pop(old)
        os.rename(self.device(vg, old), self.device(vg, new))

    def _lvremove(self, args):
        opts, targets = self._opts(args)
        for target in targets:
            vg, name = target.split('/')
            del self.vgs[vg][name]
            os.unlink(self.device(vg, name))


def chain(tmp_path, host, vg='vg'):
    """A base volume 'base' on host and two diffs: base's full image, and base -> a changed source.
    Returns (full, incremental, source content, base content)."""
    base = dict((c, ('b', c)) for c in range(32))
    src = dict(base)
    src.update(dict((c, ('s', c)) for c in range(8, 24)))
    for d in ('inc', 'full'):
        (tmp_path / d).mkdir()
    pair = VolumePair(tmp_path / 'inc', CS, base, src, base_chunks=32, src_chunks=32)
    full, inc = str(tmp_path / 'full.lvdiff'), str(tmp_path / 'inc.lvdiff')
    make_diff(pair, inc)
    pair_full = VolumePair(tmp_path / 'full', CS, {}, base, base_chunks=32, src_chunks=32)
    header = pair_full.header(full=True)
    header.volume.update(name='vol', uuid='BASE-UUID')  # the incremental's base
    pair_full.header = lambda **kw: header
    make_diff(pair_full, full, full=True)
    with open(pair.src, 'rb') as f:
        src_bytes = f.read()
    with open(pair.base, 'rb') as f:
        base_bytes = f.read()
    return full, inc, src_bytes, base_bytes

"""The send module on a pool built by the real thin_restore, read by the real thin_delta and thin_dump,
its diffs applied back to check them, and its transfers made by the real receiver script run by sh
(no sshd here). LVM (lvs, lvcreate, lvchange) is scripted and the metadata snapshot faked: they need a
kernel pool, which the integration target send has in the guest."""

import hashlib
import json
import os
import signal
import subprocess

import pytest
import yaml

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _replicate, _transfer
from ansible_collections.lvdiff.thin.plugins.module_utils._command import Runner
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import LvdiffError
from ansible_collections.lvdiff.thin.plugins.modules import send

from ansible_collections.lvdiff.thin.tests.support.volumes import build, materialize
from ansible_collections.lvdiff.thin.tests.support.shell import ShellEndpoint
from ansible_collections.lvdiff.thin.tests.support.volumes import sha256_file
from ansible_collections.lvdiff.thin.tests.support.metadata import use_metadata_file

CS = 4096
TAGS = [_replicate.TAG_SNAP, _replicate.TAG_OF + 'U-vol']


def row(name, thin_id, size, path='', attr='Vwi-a-tz--', tags=()):
    return {'lv_name': name, 'vg_name': 'vg', 'pool_lv': 'pool' if attr[0] == 'V' else '', 'thin_id': str(thin_id),
            'lv_uuid': 'U-' + name, 'lv_size': str(size), 'chunk_size': str(CS), 'lv_attr': attr,
            'lv_tags': ','.join(tags), 'lv_path': path, 'transaction_id': '2', 'data_percent': '1.0',
            'vg_extent_size': str(CS)}


class ScriptedLvm(Runner):
    """lvs, lvcreate --snapshot and lvchange on rows (a snapshot reads its origin's image: the same thin
    id in the metadata file); thin tools are real."""

    def __init__(self, rows, on_lvcreate=None):
        super().__init__()
        self.rows = rows
        self.calls = []
        self.activations = []
        self.on_lvcreate = on_lvcreate

    def run(self, argv, check=True, data=None):
        if argv[0] not in ('lvs', 'lvcreate', 'lvchange'):
            return super().run(argv, check, data)
        self.calls.append(argv[0])
        if argv[0] == 'lvs':
            missing = [a for a in argv[argv.index('-o') + 2:] if a != 'vg']
            if missing:
                return 5, '', '  Volume group "%s" not found\n' % missing[0]
            return 0, json.dumps({'report': [{'lv': [dict(r) for r in self.rows]}]}), ''
        if argv[0] == 'lvcreate':
            if self.on_lvcreate:
                self.on_lvcreate()
            name, origin = argv[argv.index('--name') + 1], argv[-1].split('/')[1]
            tags = [argv[i + 1] for i, a in enumerate(argv) if a == '--addtag']
            assert argv[1:4] == ['--snapshot', '--permission', 'r'], argv
            source = next(r for r in self.rows if r['lv_name'] == origin)
            active = 'a' if '--ignoreactivationskip' in argv else '-'
            self.rows.append(dict(source, lv_name=name, lv_uuid='U-' + name, lv_attr='Vri-%s-tz-k' % active,
                                  lv_tags=','.join(tags)))
        if argv[0] == 'lvchange' and '--activate' in argv:
            state = 'a' if argv[argv.index('--activate') + 1] == 'y' else '-'
            names = [a.split('/')[1] for a in argv if a.startswith('vg/')]
            for r in self.rows:
                if r['lv_name'] in names:
                    r['lv_attr'] = r['lv_attr'][:4] + state + r['lv_attr'][5:]
            self.activations.append((state, names))
        return 0, '', ''


class World:
    """vg/vol (thin id 2 of the pool) with a role snapshot vol-rep-1 (thin id 1); vg/full (thin id 2 too)."""

    def __init__(self, tmp_path):
        self.sc, self.meta = build(tmp_path, nr_chunks=600, layout='fragmented', change_fraction=0.1,
                                   discard_fraction=0.05, grow_chunks=20, seed=5)
        self.img = {}
        for dev, chunks in ((1, self.sc.nr_chunks), (2, self.sc.nr_chunks + self.sc.grow_chunks)):
            self.img[dev] = str(tmp_path / ('dev%d.img' % dev))
            materialize(self.sc, dev, chunks, CS, self.img[dev])
        size1, size2 = (os.path.getsize(self.img[d]) for d in (1, 2))
        self.rows = [row('pool', '', 1 << 30, attr='twi-aotz--'),
                     row('vol', 2, size2, self.img[2]),
                     row('vol-rep-1', 1, size1, self.img[1], 'Vri---tz-k', TAGS),
                     row('full', 2, size2, self.img[2])]
        self.runner = ScriptedLvm(self.rows)
        self.out = tmp_path / 'out'
        self.remote = tmp_path / 'remote'
        self.connections = []
        self.tmp = tmp_path


@pytest.fixture
def world(tmp_path, monkeypatch):
    w = World(tmp_path)

    class Endpoint(ShellEndpoint):
        def __init__(self, host, port, user, key_file, host_key_checking, timeout, io_timeout):
            super().__init__()
            self.closed = False
            w.connections.append(self)

        def close(self):
            self.closed = True

    monkeypatch.setattr(send, 'Runner', lambda module: w.runner)
    monkeypatch.setattr(_transfer, 'HAS_PARAMIKO', True)  # the fake endpoints need no paramiko
    use_metadata_file(monkeypatch, w)
    monkeypatch.setattr(_transfer, 'SSHEndpoint', Endpoint)
    return w


def step(world, name, base=None, create=True, remote=True):
    return {'snapshot': name, 'create': create, 'base': base, 'dest': str(world.out / (name + '.lvdiff')),
            'remote': str(world.remote / 'in' / (name + '.lvdiff')) if remote else None}


def args(world, *volumes, **kw):
    return dict({'host': 'backup', 'volumes': list(volumes)}, **kw)


def vol(world, lv='vol', steps=None):
    return {'vg': 'vg', 'lv': lv, 'snapshot_tags': TAGS,
            'steps': steps if steps is not None else [step(world, lv + '-rep-2', 'vol-rep-1')]}


def sha1(path):
    with open(path, 'rb') as f:
        return hashlib.sha1(f.read()).hexdigest()


def restored(world, diff, base_img):
    """The image that diff makes of base_img (None: an empty volume), for comparison with the source."""
    target = str(world.tmp / 'target.img')
    if base_img:
        subprocess.run(['cp', '--sparse=always', base_img, target], check=True)
    else:
        open(target, 'wb').close()
    fd = os.open(target, os.O_RDWR)
    try:
        _diffio.apply_file(diff, fd)
    finally:
        os.close(fd)
    return sha256_file(target)


def test_snapshot_diff_transfer_then_nothing_to_do(world, run_module):
    a = args(world, vol(world), vol(world, 'full', [step(world, 'full-rep-1')]), checksum_level=3)
    rc, res = run_module(send, a)
    assert rc == 0 and res['changed'] is True, res
    inc, full = res['volumes']
    assert (inc['failed'], full['failed']) == (False, False), res
    s = inc['steps'][0]
    assert s['created'] is True and s['changed'] is True and s['base'] == 'vol-rep-1'
    assert s['data_chunks'] > 0 and s['discard_chunks'] > 0 and s['checks'] > 0
    assert s['sha1'] == sha1(s['dest']) == sha1(s['remote'])
    assert s['bytes_sent'] == s['size'] == os.path.getsize(s['remote'])
    # the diff turns the base snapshot into the new one, byte for byte; the full image makes it from nothing
    assert restored(world, s['remote'], world.img[1]) == sha256_file(world.img[2])
    assert restored(world, full['steps'][0]['remote'], None) == sha256_file(world.img[2])
    new = [r for r in world.rows if r['lv_name'] == 'vol-rep-2'][0]
    assert new['lv_tags'] == ','.join(TAGS) and new['lv_attr'][1] == 'r'
    assert oct(os.stat(world.out).st_mode & 0o777) == '0o700'
    assert all(c.closed for c in world.connections) and 1 <= len(world.connections) <= 2
    calls = list(world.runner.calls)

    rc, again = run_module(send, a)
    assert rc == 0 and again['changed'] is False, again
    for before, after in zip(res['volumes'], again['volumes']):
        b, x = before['steps'][0], after['steps'][0]
        assert (x['created'], x['changed'], x['bytes_sent']) == (False, False, 0)
        assert all(x[k] == b[k] for k in ('sha1', 'size', 'data_chunks', 'discard_chunks', 'checks'))
    assert world.runner.calls[len(calls):] == ['lvs'], 'one lvs, no lvcreate, no activation: diffs reused'


def test_check_mode_changes_nothing(world, run_module):
    rc, res = run_module(send, args(world, vol(world)), check_mode=True)
    assert rc == 0 and res['changed'] is True
    s = res['volumes'][0]['steps'][0]
    assert s['created'] is True and s['sha1'] is None
    assert not world.out.exists() and not world.remote.exists()
    assert 'lvcreate' not in world.runner.calls and len(world.rows) == 4
    # with the snapshot and the directory there: the diff's numbers, still nothing written
    world.out.mkdir()
    rc, res = run_module(send, args(world, vol(world, steps=[step(world, 'vol', 'vol-rep-1', create=False)])),
                         check_mode=True)
    s = res['volumes'][0]['steps'][0]
    assert s['changed'] is True and s['data_chunks'] > 0 and s['size'] > 0, s
    assert os.listdir(world.out) == []


def test_check_mode_after_a_run_asks_the_target(world, run_module):
    a = args(world, vol(world, steps=[step(world, 'vol-rep-2', 'vol-rep-1')]))
    run_module(send, dict(a, volumes=[vol(world, steps=[dict(step(world, 'vol-rep-2', 'vol-rep-1'), remote=None)])]))
    rc, res = run_module(send, a, check_mode=True)
    s = res['volumes'][0]['steps'][0]
    assert s['changed'] is True and s['bytes_to_send'] == s['size'] > 0 and s['bytes_sent'] == 0
    assert not world.remote.exists()
    rc, res = run_module(send, a)
    rc, res = run_module(send, a, check_mode=True)
    assert res['changed'] is False


def test_each_volume_fails_alone_and_a_failed_step_skips_the_rest(world, run_module):
    rc, res = run_module(send, args(
        world,
        vol(world, 'missing', [step(world, 'missing-rep-2')]),
        vol(world, steps=[step(world, 'vol-rep-2', 'nobase'), step(world, 'vol-rep-3', 'vol-rep-2')]),
        {'vg': 'novg', 'lv': 'x', 'snapshot_tags': [], 'steps': [step(world, 'x')]},
        vol(world, 'full', [step(world, 'full-rep-1')]), jobs=3))
    assert rc == 0 and 'msg' not in res, res
    missing, skipped, novg, full = res['volumes']
    assert missing['msg'] == 'volume vg/missing does not exist' and missing['steps'] == []
    assert skipped['msg'] == 'base volume vg/nobase does not exist' and skipped['steps'] == []
    assert novg['msg'] == 'volume group novg does not exist on this host'
    assert [v['failed'] for v in res['volumes']] == [True, True, True, False]
    assert full['steps'][0]['sha1'] == sha1(full['steps'][0]['remote'])
    assert [r['lv_name'] for r in world.rows[4:]] == ['vol-rep-2', 'full-rep-1'], 'the snapshot step ran, the next not'
    assert not os.path.exists(step(world, 'vol-rep-3')['dest'])


def test_a_snapshot_without_the_tags_is_left_alone(world, run_module):
    world.rows.append(row('vol-rep-2', 2, 1 << 20, world.img[2], 'Vri---tz-k', [_replicate.TAG_SNAP]))
    rc, res = run_module(send, args(world, vol(world)))
    assert res['volumes'][0]['failed'] is True
    assert res['volumes'][0]['msg'].startswith('vg/vol-rep-2 exists but is not a thin snapshot with the tags')
    assert 'lvcreate' not in world.runner.calls and not world.out.exists()


def test_a_failed_transfer_fails_its_volume_and_reconnects(world, run_module, monkeypatch):
    real = _transfer.transfer

    def flaky(source, target, dest, **kw):
        if 'full' in dest:
            raise LvdiffError('transfer interrupted: kept for the next run')
        return real(source, target, dest, **kw)
    monkeypatch.setattr(_transfer, 'transfer', flaky)
    rc, res = run_module(send, args(world, vol(world, 'full', [step(world, 'full-rep-1')]), vol(world), jobs=1))
    full, inc = res['volumes']
    assert full['failed'] is True and full['msg'] == 'transfer interrupted: kept for the next run'
    assert inc['failed'] is False and inc['steps'][0]['bytes_sent'] > 0
    assert len(world.connections) == 2 and all(c.closed for c in world.connections)


def test_keep_diffs_false_removes_sent_diffs(world, run_module):
    kept = dict(step(world, 'full-rep-1'), remote=None)
    rc, res = run_module(send, args(world, vol(world), vol(world, 'full', [kept]), keep_diffs=False))
    inc, full = res['volumes']
    assert not os.path.exists(inc['steps'][0]['dest']) and os.path.exists(inc['steps'][0]['remote'])
    assert os.path.exists(full['steps'][0]['dest']), 'a diff that was not sent is kept'


def test_sigterm_fails_the_volume_and_stops_the_run(world, run_module):
    world.runner.on_lvcreate = lambda: os.kill(os.getpid(), signal.SIGTERM)
    before = signal.getsignal(signal.SIGTERM)
    rc, res = run_module(send, args(world, vol(world), vol(world, 'full', [step(world, 'full-rep-1')]), jobs=1))
    assert rc == 0
    first, second = res['volumes']
    assert first['failed'] is True and first['msg'].startswith('terminated by signal 15'), first
    assert second['msg'] == send.STOPPED
    assert signal.getsignal(signal.SIGTERM) == before
    assert not world.out.exists() or not os.listdir(world.out)


def test_paramiko_and_host_needed_only_with_a_remote(world, run_module, monkeypatch):
    monkeypatch.setattr(_transfer, 'HAS_PARAMIKO', False)
    rc, res = run_module(send, args(world, vol(world)))
    assert rc == 1 and 'paramiko' in res['msg']
    local = vol(world, steps=[step(world, 'vol-rep-2', 'vol-rep-1', remote=False)])
    rc, res = run_module(send, dict(args(world, local), host=None))
    assert rc == 0 and res['volumes'][0]['failed'] is False and world.connections == []
    monkeypatch.setattr(_transfer, 'HAS_PARAMIKO', True)
    rc, res = run_module(send, dict(args(world, vol(world)), host=None))
    assert rc == 1 and res['msg'] == 'host is required when a step has a remote'


def test_same_diff_as_lvdiff(world, run_module, monkeypatch):
    """send writes what lvdiff writes (the same _backup code path): same header identity, same records."""
    from ansible_collections.lvdiff.thin.plugins.modules import lvdiff
    monkeypatch.setattr(lvdiff, 'Runner', lambda module: world.runner)
    rc, sent = run_module(send, args(world, vol(world, steps=[step(world, 'vol', 'vol-rep-1', create=False)])))
    rc, made = run_module(lvdiff, {'vg': 'vg', 'lv': 'vol', 'base': 'vol-rep-1', 'dest': str(world.tmp / 'l.lvdiff')})
    s = sent['volumes'][0]['steps'][0]
    assert rc == 0 and made['size'] == s['size'] and made['checks'] == s['checks']
    assert made['data_chunks'] == s['data_chunks'] and made['discard_chunks'] == s['discard_chunks']


def test_every_returned_field_is_documented(world, run_module):
    doc = yaml.safe_load(send.RETURN)
    fields = set(doc['volumes']['contains'])
    step_fields = set(doc['volumes']['contains']['steps']['contains'])
    for check_mode in (True, False, False):
        rc, res = run_module(send, args(world, vol(world), vol(world, 'missing')), check_mode=check_mode)
        assert set(res) - {'changed', 'invocation'} == set(doc)
        for v in res['volumes']:
            assert not set(v) - fields, sorted(set(v) - fields)
            for s in v['steps']:
                assert not set(s) - step_fields, sorted(set(s) - step_fields)


def test_lvm_commands_do_not_grow_with_the_volumes(world, run_module):
    """All volumes' snapshots are made, then one lvs, one lvchange activating every base, one deactivating
    what the run activated (and the new snapshots), one lvs for the result: LVM commands beyond the
    lvcreates do not grow with the number of volumes."""
    for n in (1, 3):
        world.runner.calls[:] = []
        world.runner.activations[:] = []
        vols = [vol(world, 'vol', [step(world, 'vol-rep-%d' % (10 * n + k), 'vol-rep-1', remote=False)])
                for k in range(n)]
        rc, res = run_module(send, args(world, *vols))
        assert [v['failed'] for v in res['volumes']] == [False] * n, res
        assert sorted(world.runner.calls) == sorted(['lvs'] * 3 + ['lvcreate'] * n + ['lvchange'] * 2), n
        made = ['vol-rep-%d' % (10 * n + k) for k in range(n)]
        assert world.runner.activations == [('a', ['vol-rep-1']), ('-', sorted(['vol-rep-1'] + made))]
        assert all(r['lv_attr'][4] == '-' for r in world.rows if r['lv_name'].startswith('vol-rep-'))
        names = set(r['lv_name'] for r in res['lvs']['vg'])
        assert set('vol-rep-%d' % (10 * n + k) for k in range(n)) <= names, 'the result has the new snapshots'


def test_a_new_snapshot_after_a_resumed_step_waits_for_it(world, run_module, monkeypatch):
    """A step still to be sent (its snapshot exists), then a new snapshot against it: the new one is made only
    once the first is sent; if that transfer fails, no new snapshot is made (the chain stays one step long)."""
    world.rows.append(row('vol-rep-2', 2, os.path.getsize(world.img[2]), world.img[2], 'Vri---tz-k', TAGS))
    steps = [step(world, 'vol-rep-2', 'vol-rep-1', create=False), step(world, 'vol-rep-3', 'vol-rep-2')]
    real = _transfer.transfer

    def failing(source, target, dest, **kw):
        raise LvdiffError('transfer interrupted: kept for the next run')
    monkeypatch.setattr(_transfer, 'transfer', failing)
    rc, res = run_module(send, args(world, vol(world, steps=steps)))
    v = res['volumes'][0]
    assert v['failed'] is True and v['steps'] == [] and 'lvcreate' not in world.runner.calls, v
    monkeypatch.setattr(_transfer, 'transfer', real)
    rc, res = run_module(send, args(world, vol(world, steps=steps)))
    v = res['volumes'][0]
    assert v['failed'] is False and [s['created'] for s in v['steps']] == [False, True], v
    assert v['steps'][1]['sha1'] == sha1(v['steps'][1]['remote'])
    assert all(r['lv_attr'][4] == '-' for r in world.rows if r['lv_name'].startswith('vol-rep-'))


def test_created_is_the_header_time_given(world, run_module):
    a = args(world, vol(world, steps=[dict(step(world, 'vol-rep-2', 'vol-rep-1'), created='2026-02-03T04:05:06Z')]))
    rc, res = run_module(send, a)
    assert rc == 0 and not res['volumes'][0]['failed'], res
    with open(res['volumes'][0]['steps'][0]['remote'], 'rb') as f:
        assert _diffio.open_reader(f).header.created == '2026-02-03T04:05:06Z'
    bad = args(world, vol(world, steps=[dict(step(world, 'vol-rep-3', 'vol-rep-2'), created='2026-02-03 04:05')]))
    rc, res = run_module(send, bad)
    v = res['volumes'][0]
    assert v['failed'] and v['msg'] == "created '2026-02-03 04:05' is not a UTC time as YYYY-mm-ddTHH:MM:SSZ", v
    assert not os.path.exists(bad['volumes'][0]['steps'][0]['dest'])


def test_each_step_writes_its_progress_file_then_sends_and_removes_it(world, run_module, monkeypatch):
    seen = []
    replace = os.replace

    def watched(src, dst, *a, **kw):  # every os.replace here is a progress file's
        replace(src, dst, *a, **kw)
        with open(dst) as f:
            seen.append((str(dst), json.loads(f.read())))
    monkeypatch.setattr(os, 'replace', watched)
    rc, res = run_module(send, args(world, vol(world)))
    assert rc == 0 and res['changed'] is True, res
    s = res['volumes'][0]['steps'][0]
    assert {p for p, x in seen} == {s['dest'] + '.progress'}
    phases = [x['phase'] for p, x in seen]
    assert phases[-1] == 'sending' and 'writing' in phases and phases.index('writing') < phases.index('sending')
    sending = [x for p, x in seen if x['phase'] == 'sending']
    assert all(x['total'] == s['size'] and 0 < x['done'] <= s['size'] for x in sending)
    assert sorted(os.listdir(world.out)) == [os.path.basename(s['dest'])]

    del seen[:]
    rc, res = run_module(send, args(world, vol(world, steps=[step(world, 'vol-rep-3', 'vol-rep-2')]),
                                    progress_files=False))
    assert rc == 0 and res['changed'] is True and not res['volumes'][0]['failed'], res
    assert seen == [] and not any(n.endswith('.progress') for n in os.listdir(world.out))

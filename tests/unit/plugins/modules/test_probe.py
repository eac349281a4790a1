"""The probe module on a pool built by the real thin_restore and read by the real thin_delta; the lvs
report is scripted (its real parser reads it) and the metadata snapshot faked: both need a kernel pool,
which the integration target send has in the guest."""

import json

import pytest
import yaml

from ansible_collections.lvdiff.thin.plugins.module_utils import _replicate, _thinmeta
from ansible_collections.lvdiff.thin.plugins.module_utils._command import Runner
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import CommandError
from ansible_collections.lvdiff.thin.plugins.module_utils._plan import Plan
from ansible_collections.lvdiff.thin.plugins.modules import probe

from ansible_collections.lvdiff.thin.tests.support.volumes import build
from ansible_collections.lvdiff.thin.tests.support.metadata import use_metadata_file

CS = 4096
OF = _replicate.TAG_OF
TAG_BAK = _replicate.TAG_BAK_SNAP


def lv(name, thin_id, size, attr='Vwi-a-tz--', tags=(), pool='pool', uuid=None):
    return {'lv_name': name, 'vg_name': 'vg', 'pool_lv': pool if attr[0] == 'V' else '', 'thin_id': str(thin_id),
            'lv_uuid': uuid or 'U-' + name, 'lv_size': str(size), 'chunk_size': str(CS), 'lv_attr': attr,
            'lv_tags': ','.join(tags), 'lv_path': '/dev/vg/' + name, 'transaction_id': '', 'data_percent': '',
            'vg_extent_size': '4194304'}


def snap(of, stamp, thin_id, size, pool='pool'):
    return lv('%s-rep-%s' % (of, stamp), thin_id, size, 'Vri---tz-k', [_replicate.TAG_SNAP, OF + 'U-' + of], pool)


class ScriptedLvs(Runner):
    """lvs answers from rows (as lvm2 does: rc 5 naming a missing VG); every other command is real."""

    def __init__(self, rows):
        super().__init__()
        self.rows = rows
        self.lvs_calls = 0

    def run(self, argv, check=True, data=None):
        if argv[0] != 'lvs':
            return super().run(argv, check, data)
        self.lvs_calls += 1
        vgs = argv[argv.index('-o') + 2:]
        missing = [vg for vg in vgs if vg != 'vg']
        if missing:
            return 5, '', ''.join('  Volume group "%s" not found\n' % vg for vg in missing)
        return 0, json.dumps({'report': [{'lv': self.rows}]}), ''


class World:
    def __init__(self, tmp_path):
        self.sc, self.meta = build(tmp_path, nr_chunks=600, layout='fragmented', change_fraction=0.1,
                                   discard_fraction=0.05, grow_chunks=20, seed=5)
        self.old, self.new = self.sc.nr_chunks * CS, (self.sc.nr_chunks + self.sc.grow_chunks) * CS
        self.rows = [
            lv('pool', '', 1 << 30, 'twi-aotz--'), lv('pool2', '', 1 << 30, 'twi-aotz--'),
            # data: thin id 2 now, 1 at its newest snapshot (the older one would show no change)
            lv('data', 2, self.new),
            snap('data', '20260101T000000Z', 1, self.old), snap('data', '20251231T000000Z', 2, self.new),
            lv('same', 2, self.new), snap('same', '20260101T000000Z', 2, self.new),
            lv('fresh', 1, self.old),
            lv('plain', '', 1 << 20, '-wi-a-----'),
            lv('other', 2, self.new, pool='pool2'), snap('other', '20260101T000000Z', 1, self.old, pool='pool2'),
        ]
        self.runner = ScriptedLvs(self.rows)
        self.reserved = []   # pools whose metadata snapshot was reserved, in order
        self.released = []
        self.held = set()    # pools someone else holds

    def truth(self):
        with Plan(CS, self.new, self.old) as plan:
            plan.add_delta(iter(self.sc.delta(1, 2)))
            return plan.data_chunks, plan.discard_chunks


@pytest.fixture
def world(tmp_path, monkeypatch):
    w = World(tmp_path)

    monkeypatch.setattr(probe, 'Runner', lambda module: w.runner)
    use_metadata_file(monkeypatch, w)
    return w


def volumes(*names):
    return {'volumes': [{'vg': 'vg', 'lv': n} if isinstance(n, str) else n for n in names]}


def test_changes_since_the_newest_snapshot(world, run_module):
    rc, res = run_module(probe, volumes('data', 'same', 'fresh', 'other'))
    assert rc == 0 and res['changed'] is False, res
    data, same, fresh, other = res['volumes']
    want_data, want_discard = world.truth()
    assert want_data and want_discard, 'the scenario has changes'
    assert data == {'vg': 'vg', 'lv': 'data', 'uuid': 'U-data', 'size': world.new, 'chunk_size': CS,
                    'since': 'data-rep-20260101T000000Z', 'since_size': world.old, 'data_chunks': want_data,
                    'discard_chunks': want_discard, 'changed_since': True, 'changed': False, 'failed': False,
                    'estimated_size': data['estimated_size']}
    # lvdiff's own estimate: at least the data, plus headers and records
    assert want_data * CS < data['estimated_size'] < want_data * CS * 1.05 + 4096
    assert (same['since'], same['data_chunks'], same['discard_chunks'], same['changed_since']) == (
        'same-rep-20260101T000000Z', 0, 0, False)
    # no snapshot yet: the full image's chunks, from the volume's mappings
    with Plan(CS, world.old, None) as full:
        full.add_mapped(_thinmeta.thin_mappings(world.runner, world.meta, 1, metadata_snap=False))
    assert (fresh['since'], fresh['since_size'], fresh['data_chunks'], fresh['discard_chunks'],
            fresh['changed_since']) == (None, None, full.data_chunks, 0, True)
    assert full.data_chunks and fresh['estimated_size'] > full.data_chunks * CS
    assert other['data_chunks'] == want_data and other['failed'] is False
    # one lvs for the host, one metadata snapshot per pool, released
    assert world.runner.lvs_calls == 1
    assert world.reserved == ['pool', 'pool2'] and world.released == ['pool', 'pool2']


def test_the_same_counts_with_any_number_of_jobs(world, run_module):
    # jobs thin_delta runs at once on a pool's one metadata snapshot: each volume's numbers as one by one
    runs = [run_module(probe, dict(volumes('data', 'same', 'fresh', 'other', 'data'), jobs=jobs))[1]['volumes']
            for jobs in (1, 3)]
    assert runs[0] == runs[1] and runs[0][0] == runs[0][4] and runs[0][0]['data_chunks']
    assert world.reserved == world.released == ['pool', 'pool2'] * 2
    rc, res = run_module(probe, dict(volumes('data'), jobs=0))
    assert rc == 1 and res['msg'] == 'jobs must be at least 1, not 0'


def test_same_content_other_size_is_a_change(world, run_module):
    world.rows[5]['lv_size'] = str(world.new + CS)  # 'same' grew by a chunk nobody wrote yet
    rc, res = run_module(probe, volumes('same'))
    assert res['volumes'][0]['changed_since'] is True and res['volumes'][0]['data_chunks'] == 0


def test_lvs_rows_are_what_the_plan_filter_reads(world, run_module):
    rc, res = run_module(probe, volumes('data'))
    assert set(res['lvs']) == {'vg'} and len(res['lvs']['vg']) == len(world.rows)
    rows = _replicate.rows(res['lvs']['vg'])
    snaps = _replicate.snapshots_of(rows, 'U-data')
    assert [s['name'] for s in snaps] == ['data-rep-20260101T000000Z', 'data-rep-20251231T000000Z']
    assert snaps[0]['size'] == world.old
    plan = _replicate.plan(res['lvs']['vg'], [], 'vg', 'data', 'web1')
    assert plan['volume']['uuid'] == 'U-data' and plan['pending']['name'] == 'data-rep-20260101T000000Z'


def test_each_bad_volume_fails_alone(world, run_module):
    items = volumes('missing', 'plain', 'data-rep-20260101T000000Z', {'vg': 'novg', 'lv': 'x'},
                    {'vg': '-bad', 'lv': 'x'}, {'vg': 'vg', 'lv': '--all'}, 'data')
    rc, res = run_module(probe, items)
    assert rc == 0 and 'msg' not in res, res
    msgs = [v.get('msg') for v in res['volumes']]
    assert msgs[:6] == [
        'volume vg/missing does not exist',
        'volume vg/plain is not a thin volume (lv_attr -wi-a-----)',
        'vg/data-rep-20260101T000000Z is a snapshot or replica made by a role of lvdiff.thin; give the volume itself',
        'volume group novg does not exist on this host',
        "volume group '-bad' is not a valid LVM name (letters, digits, + _ . -, not starting with -)",
        "volume '--all' is not a valid LVM name (letters, digits, + _ . -, not starting with -)",
    ]
    assert [v['failed'] for v in res['volumes']] == [True] * 6 + [False]
    assert [(v['vg'], v['lv']) for v in res['volumes']] == [(i['vg'], i['lv']) for i in items['volumes']]
    assert res['volumes'][6]['data_chunks'] == world.truth()[0]


def test_a_failing_thin_delta_fails_its_volume_and_the_snapshot_is_released(world, run_module, monkeypatch):
    real = _thinmeta.thin_delta

    def flaky(runner, tmeta, base_id, source_id):
        if base_id == 2:  # 'same'
            raise CommandError('thin_delta failed (rc=1): bad metadata')
        return real(runner, tmeta, base_id, source_id)
    monkeypatch.setattr(_thinmeta, 'thin_delta', flaky)
    rc, res = run_module(probe, volumes('same', 'data'))
    assert rc == 0
    assert res['volumes'][0] == {'vg': 'vg', 'lv': 'same', 'failed': True, 'changed': False,
                                 'msg': 'thin_delta failed (rc=1): bad metadata'}
    assert res['volumes'][1]['failed'] is False and res['volumes'][1]['data_chunks'] == world.truth()[0]
    assert world.reserved == world.released == ['pool']


def test_a_held_metadata_snapshot_fails_that_pools_volumes(world, run_module):
    world.held.add('pool2')
    rc, res = run_module(probe, volumes('other', 'data'))
    assert rc == 0
    assert res['volumes'][0]['failed'] is True and 'already has a metadata snapshot' in res['volumes'][0]['msg']
    assert res['volumes'][1]['failed'] is False
    assert world.reserved == world.released == ['pool']


def test_no_lvs_fails_the_run(world, run_module, monkeypatch):
    def which(self, name):
        raise CommandError('required command %s not found on this host (install lvm2)' % name)
    monkeypatch.setattr(Runner, 'which', which)
    rc, res = run_module(probe, volumes('data'))
    assert rc == 1 and res['msg'].startswith('required command thin_delta not found'), res


def test_every_returned_field_is_documented(world, run_module):
    rc, res = run_module(probe, volumes('data', 'fresh', 'missing'), check_mode=True)
    doc = yaml.safe_load(probe.RETURN)
    assert set(res) - {'changed', 'invocation'} == set(doc)
    fields = set(doc['volumes']['contains'])
    for v in res['volumes']:
        assert not set(v) - fields, sorted(set(v) - fields)


def test_snapshot_tag_picks_which_role_s_snapshots_count(world, run_module):
    # a backup snapshot of data, newer than its replication snapshots, at the volume's present state
    world.rows.append(lv('data-bak-20260102T000000Z', 2, world.new, 'Vri---tz-k', [TAG_BAK, OF + 'U-data']))
    rc, rep = run_module(probe, volumes('data'))
    rc, bak = run_module(probe, dict(volumes('data', 'same'), snapshot_tag=TAG_BAK))
    assert rep['volumes'][0]['since'] == 'data-rep-20260101T000000Z' and rep['volumes'][0]['changed_since']
    data, same = bak['volumes']
    assert (data['since'], data['data_chunks'], data['discard_chunks'], data['changed_since']) == (
        'data-bak-20260102T000000Z', 0, 0, False)
    assert same['since'] is None and same['changed_since'] is True, 'no backup snapshot yet: a full image'
    rc, res = run_module(probe, volumes('data-bak-20260102T000000Z'))
    assert res['volumes'][0]['msg'] == ('vg/data-bak-20260102T000000Z is a snapshot or replica made by a role of '
                                        'lvdiff.thin; give the volume itself')

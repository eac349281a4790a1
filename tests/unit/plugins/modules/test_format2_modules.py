"""Format 2 (compression, encryption) through the modules: the options, the refusals before anything is
done, lvdiff's idempotence when compression or the key changes, lvpatch and restore with a key (and chains
that mix plain and encrypted files), lvdiff_info and repository_info verifying without the key, and
Ansible's missing-library failure when zstandard or cryptography is missing. Files are made by the real
writers (the lvdiff module on a pool of real thin-tools metadata, or _diffio.write_diff_file); the missing
libraries are the availability flags of _zstd and _seal set to false (an import that cannot fail here)."""

import os

import pytest
import yaml

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _repository, _restore, _seal, _zstd
from ansible_collections.lvdiff.thin.plugins.modules import (
    lvdiff, lvdiff_info, lvpatch, receive, repository_info, restore, send)

from ansible_collections.lvdiff.thin.tests.support.diffs import make_diff
from ansible_collections.lvdiff.thin.tests.support.lvmhost import lvm_host
from ansible_collections.lvdiff.thin.tests.support.repository import Snapshot, state
from ansible_collections.lvdiff.thin.tests.support.volumes import CS
from ansible_collections.lvdiff.thin.tests.unit.plugins.modules import test_lvdiff

# The lvdiff module's pool of real thin-tools metadata, and its arguments (test_lvdiff's fixture).
world = test_lvdiff.world
args = test_lvdiff.args
KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))


def key_file(directory, data=KEY_A, name='a.key'):
    path = os.path.join(str(directory), name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'wb') as f:
        f.write(data)
    return path


def key_id(data=KEY_A):
    return _seal.key_id(data)


def info(run_module, path, **kw):
    return run_module(lvdiff_info, dict(src=path, verify=True, **kw))


def documented(module):
    return set(yaml.safe_load(module.RETURN)) | {'changed', 'failed', 'msg', 'invocation'}


# --- lvdiff: writing, its result, its refusals ----------------------------------------------------------------


def test_lvdiff_writes_a_compressed_encrypted_diff_and_says_so(world, run_module, tmp_path):
    key = key_file(tmp_path)
    rc, res = run_module(lvdiff, args(world, compress='zstd', compress_level=5, encrypt_key_file=key))
    assert rc == 0 and res['changed'] is True, res
    assert (res['compression'], res['encryption'], res['key_id']) == ('zstd', 'aes-256-gcm', key_id())
    assert 0 < res['stored_data_bytes'] and res['compression_ratio'] > 1  # generated chunks compress
    assert set(res) <= documented(lvdiff)
    rc, keyless = info(run_module, res['dest'])
    assert rc == 0 and keyless['verified'] is True and keyless['keyless'] is True and keyless['decoded'] is False
    assert keyless['sha1'] == res['sha1'] and keyless['header']['format_version'] == 2
    rc, keyed = info(run_module, res['dest'], encrypt_key_file=key)
    assert rc == 0 and keyed['keyless'] is False and keyed['decoded'] is True
    assert (keyed['compression'], keyed['encryption'], keyed['key_id']) == ('zstd', 'aes-256-gcm', key_id())
    assert (keyed['stored_data_bytes'], keyed['compression_ratio']) == (res['stored_data_bytes'],
                                                                        res['compression_ratio'])
    assert set(keyed) <= documented(lvdiff_info)


def test_lvdiff_without_the_options_still_writes_format_1(world, run_module):
    rc, res = run_module(lvdiff, args(world))
    assert rc == 0 and (res['compression'], res['encryption'], res['key_id']) == ('none', 'none', None)
    assert res['compression_ratio'] == 1.0
    rc, got = info(run_module, res['dest'])
    assert got['header']['format_version'] == 1 and got['keyless'] is False and got['decoded'] is True


@pytest.mark.parametrize('options', [{'compress': 'zstd'}, {'encrypt_passphrase': 'secret'}, 'key file'])
@pytest.mark.parametrize('check_mode', [False, True])
def test_hyperlayer_compressed_or_encrypted_is_refused_first(world, run_module, tmp_path, options, check_mode):
    options = {'encrypt_key_file': key_file(tmp_path)} if options == 'key file' else options
    rc, res = run_module(lvdiff, args(world, format='hyperlayer', **options), check_mode=check_mode)
    assert rc == 1 and res['msg'] == _diffio.HYPERLAYER_REFUSED
    assert os.listdir(str(world.out)) == []


def test_key_file_and_passphrase_are_mutually_exclusive(world, run_module, tmp_path):
    rc, res = run_module(lvdiff, args(world, encrypt_key_file=key_file(tmp_path), encrypt_passphrase='zq-secret'))
    assert rc == 1 and 'mutually exclusive: encrypt_key_file|encrypt_passphrase' in res['msg']


@pytest.mark.parametrize('level', [0, 20])
def test_a_compress_level_out_of_range_is_refused(world, run_module, level):
    rc, res = run_module(lvdiff, args(world, compress='zstd', compress_level=level))
    assert rc == 1 and res['msg'] == 'compress_level %d: zstd levels are 1 (fastest) to 19 (smallest)' % level
    assert os.listdir(str(world.out)) == []


def test_a_key_file_others_can_read_is_refused_in_check_mode_too(world, run_module, tmp_path):
    key = key_file(tmp_path)
    os.chmod(key, 0o644)
    rc, res = run_module(lvdiff, args(world, encrypt_key_file=key), check_mode=True)
    assert rc == 1 and 'readable or writable by group or others (mode 0644)' in res['msg']


def test_check_mode_estimates_the_encrypted_size_exactly(world, run_module, tmp_path):
    options = args(world, encrypt_key_file=key_file(tmp_path))
    rc, estimate = run_module(lvdiff, options, check_mode=True)
    assert rc == 0 and os.listdir(str(world.out)) == []
    assert (estimate['encryption'], estimate['key_id'], estimate['stored_data_bytes']) == (
        'aes-256-gcm', key_id(), None)
    rc, res = run_module(lvdiff, options)
    assert rc == 0 and res['size'] == estimate['size']
    rc, plain = run_module(lvdiff, args(world, name='plain.lvdiff'), check_mode=True)
    assert plain['size'] < estimate['size']  # a tag per record


# --- lvdiff: idempotence with compression and keys ----------------------------------------------------------


def _rerun(run_module, world, **options):
    rc, res = run_module(lvdiff, args(world, **options))
    assert rc == 0, res
    return res


def test_idempotence_follows_compression_but_not_its_level(world, run_module):
    first = _rerun(run_module, world, compress='zstd', compress_level=3)
    assert _rerun(run_module, world, compress='zstd', compress_level=3)['changed'] is False
    other_level = _rerun(run_module, world, compress='zstd', compress_level=9)
    assert other_level['changed'] is False and other_level['sha1'] == first['sha1']
    plain = _rerun(run_module, world)
    assert plain['changed'] is True and plain['compression'] == 'none'
    assert _rerun(run_module, world)['changed'] is False
    assert _rerun(run_module, world, compress='zstd')['changed'] is True


def test_idempotence_follows_the_key_file(world, run_module, tmp_path):
    a, b = key_file(tmp_path), key_file(tmp_path, KEY_B, 'b.key')
    first = _rerun(run_module, world, encrypt_key_file=a)
    kept = _rerun(run_module, world, encrypt_key_file=a)
    assert kept['changed'] is False and (kept['sha1'], kept['key_id']) == (first['sha1'], key_id())
    rc, checked = run_module(lvdiff, args(world, encrypt_key_file=a), check_mode=True)
    assert checked['changed'] is False
    rc, checked = run_module(lvdiff, args(world, encrypt_key_file=b), check_mode=True)
    assert checked['changed'] is True and checked['key_id'] == key_id(KEY_B)
    other = _rerun(run_module, world, encrypt_key_file=b)
    assert other['changed'] is True and other['key_id'] == key_id(KEY_B)
    unencrypted = _rerun(run_module, world)
    assert unencrypted['changed'] is True and unencrypted['encryption'] == 'none'
    assert _rerun(run_module, world, encrypt_key_file=b)['changed'] is True  # a plain file for a key: rewritten


def test_idempotence_follows_the_passphrase(world, run_module, tmp_path):
    first = _rerun(run_module, world, encrypt_passphrase='correct horse')
    assert first['key_id'] is not None
    again = _rerun(run_module, world, encrypt_passphrase='correct horse')
    assert again['changed'] is False and again['key_id'] == first['key_id']  # the file's own (its salt)
    assert _rerun(run_module, world, encrypt_passphrase='battery staple')['changed'] is True
    # the same secret as a key file is another kind of key: rewritten, never "wrong key"
    assert _rerun(run_module, world, encrypt_key_file=key_file(tmp_path))['changed'] is True


def test_the_passphrase_is_not_logged():
    assert lvdiff_info.main and _diffio.ENCRYPTION_ARGS['encrypt_passphrase']['no_log'] is True


# --- lvpatch: keys, wrong keys, missing keys, plain files --------------------------------------------------


@pytest.fixture
def patch_env(tmp_path, monkeypatch):
    monkeypatch.setattr(_restore, 'LOCK_DIR', str(tmp_path / 'run-lvdiff.thin'))
    host = lvm_host(tmp_path, monkeypatch)
    monkeypatch.setattr(lvpatch, 'Runner', lambda module: host)
    return host


def full_image(tmp_path, name, **kw):
    """A full image of 8 chunks written by the real writer; (its path, the volume's bytes)."""
    snap = Snapshot(tmp_path / ('work-' + name), 'UUID-A', 'UUID--', '2026-12-01T03:00:00Z', {}, state('A', 8), 8, 0)
    path = str(tmp_path / name)
    make_diff(snap, path, full=True, **kw)
    with open(snap.src, 'rb') as f:
        return path, f.read()


def patch_args(src, **kw):
    return dict({'src': src, 'vg': 'vg', 'pool': 'pool', 'name': 'x'}, **kw)


def test_lvpatch_applies_an_encrypted_compressed_diff_with_its_key(patch_env, run_module, tmp_path):
    key = key_file(tmp_path)
    src, image = full_image(tmp_path, 'd.lvdiff', compress_level=3, key=_seal.Key.from_file(key))
    rc, res = run_module(lvpatch, patch_args(src, encrypt_key_file=key))
    assert rc == 0 and res['changed'] is True, res
    assert patch_env.content('vg', 'x') == image


def test_lvpatch_refuses_an_encrypted_diff_without_a_key_before_anything(patch_env, run_module, tmp_path):
    src, image = full_image(tmp_path, 'd.lvdiff', key=_seal.Key.from_file(key_file(tmp_path)))
    for check_mode in (False, True):
        rc, res = run_module(lvpatch, patch_args(src), check_mode=check_mode)
        assert rc == 1 and res['msg'] == ('%s is encrypted with key id %s: give encrypt_key_file or '
                                          'encrypt_passphrase' % (src, key_id()))
        assert patch_env.changes() == [] and sorted(patch_env.vgs['vg']) == ['pool']


def test_lvpatch_refuses_a_wrong_key_as_a_wrong_key(patch_env, run_module, tmp_path):
    src, image = full_image(tmp_path, 'd.lvdiff', compress_level=1, key=_seal.Key.from_file(key_file(tmp_path)))
    rc, res = run_module(lvpatch, patch_args(src, encrypt_key_file=key_file(tmp_path, KEY_B, 'b.key')))
    assert rc == 1 and res['msg'].startswith('wrong key: %s was encrypted with key id %s' % (src, key_id()))
    assert 'corrupt' not in res['msg'] and patch_env.changes() == []
    rc, res = run_module(lvpatch, patch_args(src, encrypt_passphrase='not it'))
    assert rc == 1 and res['msg'].startswith('wrong key: %s was encrypted with a key file' % src)


def test_lvpatch_with_a_key_refuses_a_plain_diff(patch_env, run_module, tmp_path):
    """Anyone who can write where the file lies can write a plain one: a key applies only what it seals."""
    src, image = full_image(tmp_path, 'd.lvdiff', compress_level=2)
    rc, res = run_module(lvpatch, patch_args(src, encrypt_key_file=key_file(tmp_path)))
    assert rc == 1 and res['msg'].startswith('%s is not encrypted, but a key was given' % src), res
    assert patch_env.changes() == []
    rc, res = run_module(lvpatch, patch_args(src))
    assert rc == 0 and patch_env.content('vg', 'x') == image


# --- a backup repository: a chain that mixes plain and encrypted files --------------------------------------

VOL = ('web1', 'vg0', 'data')
TIMES = {'A': '2026-12-01T03:00:00Z', 'B': '2026-12-02T03:00:00Z', 'C': '2026-12-03T03:00:00Z'}
BASES = {'A': None, 'B': 'A', 'C': 'B'}


def put(tmp_path, letter, **kw):
    root = str(tmp_path / 'repo')
    dest = _repository.backup_path(root, VOL[0], VOL[1], VOL[2], TIMES[letter], BASES[letter] is None)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    base = BASES[letter]
    snap = Snapshot(tmp_path / ('work' + letter), 'UUID-' + letter, 'UUID-' + (base or '-'), TIMES[letter],
                    state(base, 8) if base else {}, state(letter, 8), 8, 8 if base else 0)
    make_diff(snap, dest, full=base is None, pairs=dict(zip(_repository.PAIR_KEYS, VOL)), **kw)
    with open(snap.src, 'rb') as f:
        return dest, f.read()


def repository(tmp_path, monkeypatch, sealed):
    """A repository whose chain is A, B compressed, C encrypted and compressed, the letters in sealed
    encrypted too; (host, root, key, images)."""
    monkeypatch.setattr(_restore, 'LOCK_DIR', str(tmp_path / 'run-lvdiff.thin'))
    host = lvm_host(tmp_path, monkeypatch)
    monkeypatch.setattr(restore, 'Runner', lambda module: host)
    key = key_file(tmp_path)
    images = {}
    for letter, kw in (('A', {}), ('B', {'compress_level': 3}), ('C', {'compress_level': 3})):
        if letter in sealed:
            kw = dict(kw, key=_seal.Key.from_file(key))
        images[letter] = put(tmp_path, letter, **kw)[1]
    return host, str(tmp_path / 'repo'), key, images


@pytest.fixture
def mixed(tmp_path, monkeypatch):
    """A plain, B compressed, C encrypted and compressed."""
    return repository(tmp_path, monkeypatch, 'C')


@pytest.fixture
def sealed(tmp_path, monkeypatch):
    """A, B and C encrypted (B and C compressed)."""
    return repository(tmp_path, monkeypatch, 'ABC')


def restore_args(root, **kw):
    return dict({'repository': root, 'host': 'web1', 'vg_from': 'vg0', 'lv': 'data', 'vg': 'vg', 'pool': 'pool',
                 'name': 'x'}, **kw)


def test_restore_with_the_key_refuses_the_plain_files_of_a_mixed_chain(mixed, run_module):
    host, root, key, images = mixed
    rc, res = run_module(restore, restore_args(root, encrypt_key_file=key))
    assert rc == 1 and res['msg'].startswith('web1/vg0/data/20261201T030000Z-full.lvdiff: ') and (
        'is not encrypted, but a key was given' in res['msg']), res
    assert host.changes() == []


def test_restore_without_the_key_is_refused_before_anything(mixed, run_module):
    host, root, key, images = mixed
    for check_mode in (False, True):
        rc, res = run_module(restore, restore_args(root), check_mode=check_mode)
        assert rc == 1 and res['msg'] == ('web1/vg0/data/20261203T030000Z-incr.lvdiff: the diff is encrypted with '
                                          'key id %s: give encrypt_key_file or encrypt_passphrase' % key_id())
        assert host.changes() == []
    rc, res = run_module(restore, restore_args(root, point='2026-12-02T03:00:00Z'))  # A and B are plain
    assert rc == 0 and host.content('vg', 'x') == images['B']


def test_restore_with_a_wrong_key_names_the_file_and_the_key(sealed, run_module, tmp_path):
    host, root, key, images = sealed
    rc, res = run_module(restore, restore_args(root, encrypt_key_file=key_file(tmp_path, KEY_B, 'b.key')))
    assert rc == 1 and res['msg'].startswith('web1/vg0/data/20261201T030000Z-full.lvdiff: wrong key: '), res
    assert host.changes() == []


def test_restore_of_an_encrypted_chain_with_its_key(sealed, run_module):
    host, root, key, images = sealed
    rc, res = run_module(restore, restore_args(root, encrypt_key_file=key))
    assert rc == 0 and res['changed'] is True, res
    assert host.content('vg', 'x') == images['C']
    rc, again = run_module(restore, restore_args(root))  # the volume exists: its SHA-1 tells, no key needed
    assert rc == 0 and again['changed'] is False


def test_repository_info_verifies_encrypted_files_keylessly_or_with_the_key(mixed, run_module):
    host, root, key, images = mixed
    rc, res = run_module(repository_info, {'repository': root, 'verify': 'all', 'list_files': True})
    vol = res['volumes'][0]
    ids = [f['id'] for f in vol['files']]
    assert rc == 0 and vol['verified'] == ids and vol['errors'] == []
    assert vol['keyless'] == ids[2:]
    assert [(f['compression'], f['encryption'], f['key_id']) for f in vol['files']] == [
        ('none', 'none', None), ('zstd', 'none', None), ('zstd', 'aes-256-gcm', key_id())]
    rc, res = run_module(repository_info, {'repository': root, 'verify': 'all', 'encrypt_key_file': key})
    assert rc == 0 and res['volumes'][0]['verified'] == ids and res['volumes'][0]['keyless'] == []


def test_repository_info_finds_a_flipped_byte_in_an_encrypted_file_without_the_key(mixed, run_module):
    host, root, key, images = mixed
    path = os.path.join(root, 'web1/vg0/data/20261203T030000Z-incr.lvdiff')
    with open(path, 'r+b') as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x01]))
    rc, res = run_module(repository_info, {'repository': root, 'verify': 'all'})
    vol = res['volumes'][0]
    assert rc == 0 and len(vol['verified']) == 2 and vol['keyless'] == []
    assert [e['id'] for e in vol['errors']] == ['web1/vg0/data/20261203T030000Z-incr.lvdiff']
    assert 'corrupt diff' in vol['errors'][0]['msg']
    rc, res = info(run_module, path)
    assert rc == 1 and 'corrupt diff' in res['msg']


def test_repository_info_with_a_wrong_key_reports_it_per_file(mixed, run_module, tmp_path):
    host, root, key, images = mixed
    rc, res = run_module(repository_info, {'repository': root, 'verify': 'all',
                                           'encrypt_key_file': key_file(tmp_path, KEY_B, 'b.key')})
    vol = res['volumes'][0]
    assert rc == 0 and len(vol['verified']) == 2
    assert [e['msg'].split(': ')[1] for e in vol['errors']] == ['wrong key']


# --- missing libraries ----------------------------------------------------------------------------------------


def test_compression_without_zstandard_fails_as_ansible_says(world, run_module, monkeypatch):
    monkeypatch.setattr(_zstd, 'HAS_ZSTANDARD', False)
    for check_mode in (False, True):
        rc, res = run_module(lvdiff, args(world, compress='zstd'), check_mode=check_mode)
        assert rc == 1 and res['msg'].startswith('Failed to import the required Python library (zstandard)')
        assert 'for compressing a diff (compress=zstd)' in res['msg'] and 'python3-zstandard' in res['msg']
        assert os.listdir(str(world.out)) == []
    rc, res = run_module(lvdiff, args(world))  # not asked for: not needed
    assert rc == 0 and res['compression'] == 'none'


def test_reading_a_compressed_file_without_zstandard_fails_as_ansible_says(world, run_module, monkeypatch):
    rc, res = run_module(lvdiff, args(world, compress='zstd'))
    monkeypatch.setattr(_zstd, 'HAS_ZSTANDARD', False)
    rc, got = info(run_module, res['dest'])
    assert rc == 1 and got['msg'].startswith('Failed to import the required Python library (zstandard)')
    rc, got = run_module(lvdiff_info, {'src': res['dest']})  # the header alone needs no library
    assert rc == 0 and got['compression'] == 'zstd'


def test_encryption_without_cryptography_fails_as_ansible_says(world, run_module, monkeypatch, tmp_path):
    key = key_file(tmp_path)
    rc, res = run_module(lvdiff, args(world, encrypt_key_file=key))
    assert rc == 0
    monkeypatch.setattr(_seal, 'HAS_CRYPTOGRAPHY', False)
    rc, again = run_module(lvdiff, args(world, name='other.lvdiff', encrypt_key_file=key), check_mode=True)
    assert rc == 1 and again['msg'].startswith('Failed to import the required Python library (cryptography)')
    rc, got = info(run_module, res['dest'], encrypt_key_file=key)
    assert rc == 1 and got['msg'].startswith('Failed to import the required Python library (cryptography)')
    rc, got = info(run_module, res['dest'])  # keyless verification is stdlib only
    assert rc == 0 and got['keyless'] is True and got['decoded'] is False


# --- the same options everywhere ---------------------------------------------------------------------------


@pytest.mark.parametrize('module', [lvdiff, send, lvpatch, restore, receive, lvdiff_info, repository_info])
def test_every_module_that_reads_or_writes_diffs_takes_the_key_options(module):
    options = yaml.safe_load(module.DOCUMENTATION)
    assert 'lvdiff.thin.encryption' in options['extends_documentation_fragment']
    writes = module in (lvdiff, send)
    assert ('lvdiff.thin.encryption.COMPRESSION' in options['extends_documentation_fragment']) == writes


def test_send_passes_the_options_to_each_diff():
    sender = send.Sender.__new__(send.Sender)
    sender.p = {'checksum_level': 2, 'compress': 'zstd', 'compress_level': 7, 'encrypt_key_file': '/k',
                'encrypt_passphrase': None}
    options = sender.diff_options({'vg': 'vg'}, {'snapshot': 's', 'base': None, 'dest': '/d', 'pairs': {},
                                                 'created': None})
    assert (options['compress'], options['compress_level'], options['encrypt_key_file']) == ('zstd', 7, '/k')
    assert CS

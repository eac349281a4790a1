"""lvdiff_info on real diff files of both formats."""

import hashlib

from ansible_collections.lvdiff.thin.plugins.modules import lvdiff_info

from ansible_collections.lvdiff.thin.tests.support.diffs import make_diff
from ansible_collections.lvdiff.thin.tests.support.volumes import VolumePair

CS = 4096


def _pair(tmp_path):
    base = {c: ('b', c) for c in range(32)}
    src = dict(base)
    src.update({c: ('s', c) for c in (1, 2, 7)})
    del src[20]
    return VolumePair(tmp_path, CS, base, src, base_chunks=32, src_chunks=32)


def test_header_only_and_verified(tmp_path, run_module):
    pair = _pair(tmp_path)
    path = str(tmp_path / 'd.lvdiff')
    written = make_diff(pair, path, pairs={'host': 'web1', 'note': 'a:b'})
    rc, res = run_module(lvdiff_info, {'src': path})
    assert rc == 0 and res['changed'] is False and res['verified'] is False
    assert res['format'] == 'lvdiff' and res['incremental'] is True
    assert res['pairs'] == {'host': 'web1', 'note': 'a:b'}
    assert res['header']['volume']['uuid'] == 'SRC-UUID' and 'sha1' not in res
    rc, res = run_module(lvdiff_info, {'src': path, 'verify': True}, check_mode=True)
    assert rc == 0 and res['verified'] is True
    assert res['sha1'] == written['sha1'] == hashlib.sha1(open(path, 'rb').read()).hexdigest()
    assert res['records'] == {'check': 4, 'data': 2, 'discard': 1}  # level 2: all 4 touched chunks


def test_hyperlayer(tmp_path, run_module):
    pair = _pair(tmp_path)
    path = str(tmp_path / 'd.hl')
    make_diff(pair, path, fmt='hyperlayer', level=3)
    rc, res = run_module(lvdiff_info, {'src': path, 'verify': True})
    assert rc == 0 and res['format'] == 'hyperlayer'
    assert res['records'] == {'check': 4, 'data': 4, 'discard': 0}


def test_corrupt_file_fails_cleanly(tmp_path, run_module):
    pair = _pair(tmp_path)
    path = str(tmp_path / 'd.lvdiff')
    make_diff(pair, path)
    data = bytearray(open(path, 'rb').read())
    data[-30] ^= 1
    open(path, 'wb').write(bytes(data))
    rc, res = run_module(lvdiff_info, {'src': path})
    assert rc == 0  # the header is intact
    rc, res = run_module(lvdiff_info, {'src': path, 'verify': True})
    assert rc == 1 and res['failed'] is True
    assert 'TRAILER record checksum mismatch' in res['msg'] and 'Traceback' not in res['msg']


def test_missing_file(tmp_path, run_module):
    rc, res = run_module(lvdiff_info, {'src': str(tmp_path / 'nope')})
    assert rc == 1 and res['msg'].startswith('cannot open diff file') and 'No such file' in res['msg']

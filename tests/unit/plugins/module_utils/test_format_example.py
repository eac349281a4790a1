"""docs/format.md's worked example of version 2 is what our writer writes, byte for byte, and what our
reader reads with the documented test key."""

import io
import pathlib

from ansible_collections.lvdiff.thin.plugins.module_utils import _diffio, _seal

from ansible_collections.lvdiff.thin.tests.support import format_example

DOC = pathlib.Path(__file__).resolve().parents[4] / 'docs' / 'format.md'


def test_the_worked_example_in_the_docs_is_current():
    text = DOC.read_text()
    assert text.count(format_example.BEGIN) == 1 and text.count(format_example.END) == 1
    shown = text[text.index(format_example.BEGIN):text.index(format_example.END) + len(format_example.END)]
    assert shown == format_example.doc_block(), (
        'docs/format.md shows another worked example: regenerate it (tests/support/format_example.py says how)')


def test_the_worked_example_reads_back():
    data, key = format_example.example_file()
    assert len(data) == 1000
    with _diffio.open_reader(io.BytesIO(data), _seal.Key(bytes(range(32)), 'the test key')) as reader:
        events = [(k, o, n, bytes(p) if p is not None else None) for k, o, n, p in reader.events()]
        result = _diffio.summary(reader)
    line = b'lvdiff.thin format 2 example\n'
    assert events[1:] == [('data', 0, 65536, (line * 2300)[:65536]), ('discard', 196608, 65536, None)]
    assert events[0][:3] == ('check', 0, 65536)
    assert (result['compression'], result['encryption'], result['key_id']) == (
        'zstd', 'aes-256-gcm', '6d302b6433400b4f6d0775f8cbc0cd5b')
    assert result['stored_data_bytes'] == 47 and result['compression_ratio'] == round(65536 / 47, 3)
    # and without the key: everything a keyless host checks
    with _diffio.open_reader(io.BytesIO(data)) as reader:
        assert _diffio.verify(reader)['decoded'] is False


def test_the_group_example_in_the_docs_is_current():
    text = DOC.read_text()
    begin, end = format_example.GROUP_BEGIN, format_example.GROUP_END
    assert text.count(begin) == 1 and text.count(end) == 1
    shown = text[text.index(begin):text.index(end) + len(end)]
    assert shown == format_example.doc_block(group=True), (
        'docs/format.md shows another GROUP example: regenerate it (tests/support/format_example.py says how)')


def test_the_group_example_reads_back():
    data, key = format_example.example_file(group=True)
    with _diffio.open_reader(io.BytesIO(data), _seal.Key(bytes(range(32)), 'the test key')) as reader:
        events = [(k, o, n, bytes(p) if p is not None else None) for k, o, n, p in reader.events()]
        result = _diffio.summary(reader)
    one, two = b'lvdiff.thin format 2 example\n', b'a second changed chunk\n'
    assert events[1:] == [('data', 0, 65536, (one * 2300)[:65536]), ('data', 131072, 65536, (two * 2900)[:65536]),
                          ('discard', 196608, 65536, None)]
    assert result['records'] == {'check': 1, 'data': 2, 'discard': 1, 'group': 1}
    assert result['stored_data_bytes'] == 78
    with _diffio.open_reader(io.BytesIO(data)) as reader:
        assert _diffio.verify(reader)['records'] == result['records']

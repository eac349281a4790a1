"""_command: real commands for what can be made to happen (failures, odd output); a scripted
AnsibleModule only for the module path."""

import os
import shlex
import subprocess
import sys

import pytest

from ansible_collections.lvdiff.thin.plugins.module_utils._command import Runner
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import CommandError


def test_run_returns_text_and_uses_the_c_locale():
    rc, out, err = Runner().run(['sh', '-c', 'echo "$LC_ALL"; echo oops >&2'])
    assert (rc, out, err) == (0, 'C\n', 'oops\n')


def test_failure_quotes_argv_and_keeps_output():
    script = 'echo "it failed" >&2; exit 3'
    with pytest.raises(CommandError) as info:
        Runner().run(['sh', '-c', script])
    e = info.value
    assert e.msg.endswith("sh -c 'echo \"it failed\" >&2; exit 3' failed (rc=3): it failed")
    assert (e.details['rc'], e.details['stderr'], e.details['cmd'][1:]) == (3, 'it failed\n', ['-c', script])


def test_check_false_returns_the_failure():
    assert Runner().run(['sh', '-c', 'echo out; exit 4'], check=False) == (4, 'out\n', '')


def test_invalid_utf8_is_replaced_not_a_traceback():
    rc, out, err = Runner().run(['printf', r'a\377b'])
    assert out == 'a\ufffdb'


def test_huge_error_output_is_cut_in_the_message():
    with pytest.raises(CommandError) as info:
        Runner().run(['sh', '-c', 'head -c 200000 /dev/zero | tr "\\0" x >&2; echo THE-REASON >&2; exit 1'])
    assert info.value.msg.endswith(': ...' + 'x' * 1990 + 'THE-REASON')
    assert len(info.value.details['stderr']) == 200011  # all of it stays in the details


def test_stream_failure_keeps_the_tail_of_stderr():
    with pytest.raises(CommandError) as info:
        with Runner().stream(['sh', '-c', 'head -c 1000000 /dev/zero | tr "\\0" x >&2; echo WHY >&2; exit 2']) as out:
            assert out.read() == b''
    e = info.value
    assert e.details['rc'] == 2 and e.details['stderr'].endswith('xxWHY')
    assert len(e.details['stderr']) < (64 << 10) and e.msg.endswith('xxWHY')


def test_stream_reads_stdout():
    with Runner().stream(['printf', 'abc']) as out:
        assert out.read() == b'abc'


class FakeModule:
    """AnsibleModule's run_command/get_bin_path, recorded."""

    def __init__(self, rc=0, out='', err=''):
        self.calls = []
        self.answer = rc, out, err

    def get_bin_path(self, name):
        return {'lvs': '/usr/sbin/lvs'}.get(name)

    def run_command(self, argv, **kw):
        self.calls.append((argv, kw))
        return self.answer


def test_module_path_resolves_and_passes_the_locale():
    m = FakeModule(out='x')
    assert Runner(m).run(['lvs', '--version']) == (0, 'x', '')
    argv, kw = m.calls[0]
    assert argv == ['/usr/sbin/lvs', '--version']
    assert kw['environ_update'] == {'LC_ALL': 'C', 'LANGUAGE': 'C'} and kw['data'] is None


def test_module_path_failure_and_missing_command():
    with pytest.raises(CommandError, match=r"^/usr/sbin/lvs -o 'a b' failed \(rc=5\): no") as info:
        Runner(FakeModule(rc=5, err='no\n')).run(['lvs', '-o', 'a b'])
    assert info.value.details['stderr'] == 'no\n'
    with pytest.raises(CommandError, match='required command thin_dump not found.*thin-provisioning-tools'):
        Runner(FakeModule()).run(['thin_dump'])


def test_env_extends_the_c_locale():
    rc, out, err = Runner(env={'LVDIFF_TEST': '1'}).run(['sh', '-c', 'echo "$LC_ALL $LVDIFF_TEST"'])
    assert out == 'C 1\n' and 'LVDIFF_TEST' not in os.environ


@pytest.mark.parametrize('word', ['a b', "it's", '$(reboot)', 'x;y', '', '-\n-'])
def test_failure_message_quotes_each_word_as_a_shell_would_need(word):
    """An operator can paste the command from the message: no word runs, splits or vanishes."""
    with pytest.raises(CommandError) as info:
        Runner().run(['sh', '-c', 'exit 1', 'arg0', word])
    shown = info.value.msg.split(' failed (rc=1)')[0]
    assert shlex.split(shown)[1:] == ['-c', 'exit 1', 'arg0', word]


def test_failure_without_stderr_shows_the_tail_of_stdout():
    with pytest.raises(CommandError) as info:
        Runner().run(['sh', '-c', 'head -c 5000 /dev/zero | tr "\\0" y; echo LAST; exit 2'])
    assert info.value.msg.endswith('failed (rc=2): ...' + 'y' * 1996 + 'LAST')


def test_data_goes_to_stdin():
    assert Runner().run(['cat'], data='in put') == (0, 'in put', '')
    m = FakeModule()
    Runner(m).run(['lvs'], data='x')
    assert m.calls[0][1]['data'] == 'x' and m.calls[0][1]['binary_data'] is True


def test_missing_tool_runs_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv('PATH', str(tmp_path))
    for start in (lambda r: r.run(['lvs']), lambda r: r.stream(['thin_dump'])):
        with pytest.raises(CommandError, match=r'^required command \S+ not found on this host \(install '):
            start(Runner())
    with pytest.raises(CommandError, match=r'^required command lvcreate not found on this host \(install lvm2\)$'):
        Runner().which('lvcreate')
    m = FakeModule()
    with pytest.raises(CommandError, match='required command dmsetup not found'):
        Runner(m).run(['dmsetup', 'message'])
    assert m.calls == []


def test_stream_uses_the_c_locale():
    with Runner().stream(['sh', '-c', 'echo "$LC_ALL/$LANGUAGE"']) as out:
        assert out.read() == b'C/C\n'


def test_stream_reader_that_stops_early_is_no_failure():
    """A reader that has what it needs closes the pipe: the writer dies of SIGPIPE, not an error."""
    def first_line():
        with Runner().stream(['sh', '-c', 'while :; do echo line; done']) as out:
            yield out.readline()
    lines = first_line()
    assert next(lines) == b'line\n'
    lines.close()


def test_stream_reader_failure_is_not_masked_by_the_killed_command():
    with pytest.raises(ValueError, match='parser'):
        with Runner().stream(['yes']):
            raise ValueError('parser gave up')


def test_wait_for_children_waits_for_a_command_started_before_a_signal(tmp_path):
    """In a process of its own: waiting for every child would also reap other tests' children."""
    done = tmp_path / 'done'
    script = (
        'import subprocess, sys\n'
        'from ansible_collections.lvdiff.thin.plugins.module_utils._command import wait_for_children\n'
        'subprocess.Popen(["sh", "-c", "sleep 0.3; : > \\"$0\\"", sys.argv[1]])\n'
        'wait_for_children()\n'
        'print(open(sys.argv[1]).read() == "")\n'
        'wait_for_children()\n')  # none left: returns at once
    out = subprocess.run([sys.executable, '-c', script, str(done)], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)))
    assert out.stdout == 'True\n'

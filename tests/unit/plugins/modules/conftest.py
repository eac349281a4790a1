import json

import pytest
from ansible_collections.lvdiff.thin.tests.support.module_args import patch_module_args


@pytest.fixture
def run_module(capsys):
    """Run a module's main() with args; return (exit code, result dict)."""
    def run(module, args, check_mode=False):
        if check_mode:
            args = dict(args, _ansible_check_mode=True)
        with patch_module_args(args):
            with pytest.raises(SystemExit) as info:
                module.main()
        out = capsys.readouterr().out
        return info.value.code, json.loads(out)
    return run

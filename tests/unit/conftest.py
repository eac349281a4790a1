"""Make the checkout importable as ``ansible_collections.lvdiff.thin`` for plain pytest.

ansible-core resolves collection code by that package path; a symlink under tests/output keeps the
checkout itself the single source of truth. ``make`` makes it before pytest starts; this makes it
for a bare ``pytest`` on a fresh clone. pytest.ini puts tests/output/collections on the path
(``ansible-test units`` has its own collection loader, and makes no link).
"""
import importlib
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LINK = os.path.join(REPO, "tests", "output", "collections", "ansible_collections", "lvdiff", "thin")

if not os.path.lexists(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink(os.path.relpath(REPO, os.path.dirname(LINK)), LINK)
    # The path entry was looked at before it existed: forget that it was missing.
    importlib.invalidate_caches()


@pytest.fixture(scope='module', params=('0.9', '1.x'), ids=lambda g: 'tools-' + g)
def thin_tools(request):
    """Run the requesting tests once per thin-provisioning-tools generation (tests/support/thintools.py):
    PATH puts that generation's thin_* first for the whole module; a missing generation fails."""
    from ansible_collections.lvdiff.thin.tests.support import thintools
    try:
        path = thintools.path_for(request.param)
    except thintools.ToolsMissing as e:
        pytest.fail(str(e), pytrace=False)
    mp = pytest.MonkeyPatch()
    mp.setenv('PATH', path)
    yield request.param
    mp.undo()

"""Make the checkout importable as ``ansible_collections.lvdiff.thin``.

ansible-core resolves collection code by that package path; a symlink under
tests/output keeps the checkout itself the single source of truth.
"""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOT = os.path.join(REPO, "tests", "output", "collections")
LINK = os.path.join(ROOT, "ansible_collections", "lvdiff", "thin")

if not os.path.exists(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink(REPO, LINK)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

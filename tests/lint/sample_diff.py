"""Write a small, valid incremental diff file with the unit tests' helpers.

Usage: python tests/lint/sample_diff.py OUT_DIR
Prints the path of the diff file and its SHA-1, one per line. `make lint` feeds the file to
lvdiff.thin.lvdiff_info from a collection installed out of the built tarball.
"""
import hashlib
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The collection path that make lint links (the checkout as ansible_collections/lvdiff/thin).
sys.path.insert(0, os.path.join(REPO, 'tests', 'output', 'collections'))
from ansible_collections.lvdiff.thin.tests.support.diffs import make_diff  # noqa: E402
from ansible_collections.lvdiff.thin.tests.support.volumes import VolumePair  # noqa: E402


class _Dir(str):
    """tmp_path stand-in: VolumePair joins names with `/`."""

    def __truediv__(self, name):
        return os.path.join(self, name)


def main():
    out = _Dir(os.path.abspath(sys.argv[1]))
    os.makedirs(out, exist_ok=True)
    cs = 65536
    base = {0: 'a', 1: 'b', 5: 'c'}
    src = {0: 'a', 1: 'B', 3: 'd'}  # one chunk changed, one new, one discarded
    pair = VolumePair(out, cs, base, src, 8, 8)
    path = os.path.join(out, 'sample.lvdiff')
    make_diff(pair, path, pairs={'made-by': 'tests/lint/sample_diff.py'})
    with open(path, 'rb') as f:
        sha1 = hashlib.sha1(f.read()).hexdigest()
    print(path)
    print(sha1)


if __name__ == '__main__':
    main()

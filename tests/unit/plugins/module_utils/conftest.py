"""Make the helper modules beside these tests (volumes.py, test_diff_roundtrip.py) importable
by plain name also under ``ansible-test units``, which imports test files as packages and so
does not put their directory on sys.path as plain pytest does."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

"""Helpers shared by the tests, imported by the collection path, e.g.
``from ansible_collections.lvdiff.thin.tests.support.volumes import VolumePair``
(the checkout is the collection: ``make`` links it under tests/output/collections, and pytest.ini
puts that directory on pytest's path; ``ansible-test units`` has its own collection loader).

- volumes: sparse files that act as thin volumes, and pools generated with known truth
- diffs: diff files written as lvdiff does, as the Go lvdiff does, or taken apart record by record
- shell: the transfer receiver run by sh on this machine, as if over SSH
- thinpool: the thin-pool metadata generator (also a script, and used by the benchmarks)
"""

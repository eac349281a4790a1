"""Backups for the repository tests: snapshots named by a letter, whose diffs carry the UUIDs and creation
times of a repository's chains (written with make_diff where tests/unit put them)."""

import os

from ansible_collections.lvdiff.thin.tests.support.volumes import CS, VolumePair


def state(letter, chunks=8):
    """The volume's chunks when backup letter was made: each backup changes some, unmaps one."""
    n = ord(letter)
    return dict((c, (letter, c)) for c in range(chunks) if c != n % chunks and (c + n) % 3)


class Snapshot(VolumePair):
    """A VolumePair whose diff header names the volumes of a repository's chain."""

    def __init__(self, work, uuid, base_uuid, created, base_map, src_map, chunks=8, base_chunks=8, cs=CS):
        os.makedirs(str(work))
        super().__init__(work, cs, base_map, src_map, base_chunks, chunks)
        self.uuid, self.base_uuid, self.created = uuid, base_uuid, created

    def header(self, level=2, seed=7, pairs=None, full=False):
        h = super().header(level, seed, pairs, full)
        h.volume['uuid'] = self.uuid
        if h.base is not None:
            h.base['uuid'] = self.base_uuid
        h.created = self.created
        return h

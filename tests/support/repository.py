"""Backups for the repository tests: snapshots named by a letter, whose diffs carry the UUIDs and creation
times of a repository's chains (written with make_diff where tests/unit put them)."""

import itertools
import os

from ansible_collections.lvdiff.thin.plugins.module_utils import _repository
from ansible_collections.lvdiff.thin.tests.support.diffs import make_diff
from ansible_collections.lvdiff.thin.tests.support.volumes import CS, VolumePair

_WORK = itertools.count()


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


def put_backup(tmp_path, place, letter, created, base, uuid=None):
    """Write backup letter of place (host, vg, lv) into the repository tmp_path/repo where the layout puts it,
    made against backup base (a letter, None for a full image); its volume UUID is UUID-<letter> (or uuid),
    its header pairs name place. Returns its path."""
    dest = _repository.backup_path(str(tmp_path / 'repo'), place[0], place[1], place[2], created, base is None)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    snap = Snapshot(tmp_path / 'work' / str(next(_WORK)), uuid or 'UUID-' + letter, 'UUID-' + (base or '-'),
                    created, state(base) if base else {}, state(letter))
    make_diff(snap, dest, full=base is None, pairs=dict(zip(_repository.PAIR_KEYS, place)))
    return dest

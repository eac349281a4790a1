"""The thin tools on a metadata file that thin_restore made, in place of a live pool's: the modules' tests
read real thin_delta and thin_dump output without device-mapper."""

import functools

from ansible_collections.lvdiff.thin.plugins.module_utils import _thinmeta
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import MetadataSnapshotHeldError


def use_metadata_file(monkeypatch, world):
    """Point the modules' thin tools at world.meta. Reserving a metadata snapshot of a pool named in
    world.held fails as LVM's held snapshot does; reserved and released pools are appended to
    world.reserved and world.released when world has them."""

    class MetadataFile:
        def __init__(self, runner, vg, pool):
            self.pool, self.tmeta = pool, world.meta

        def __enter__(self):
            if self.pool in getattr(world, 'held', ()):
                raise MetadataSnapshotHeldError('pool vg/%s already has a metadata snapshot' % self.pool)
            getattr(world, 'reserved', []).append(self.pool)
            return self

        def __exit__(self, *exc):
            getattr(world, 'released', []).append(self.pool)
            return False

    monkeypatch.setattr(_thinmeta, 'MetadataSnapshot', MetadataFile)
    # The restored file has no metadata snapshot: the tools read its live root.
    for tool in ('thin_delta', 'thin_mappings'):
        monkeypatch.setattr(_thinmeta, tool, functools.partial(getattr(_thinmeta, tool), metadata_snap=False))

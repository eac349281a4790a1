# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Domain errors. Utilities raise these; a module's main() turns them into fail_json."""

from __future__ import annotations


class LvdiffError(Exception):
    """Base of every expected failure: the message is meant for the operator."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details


class FormatError(LvdiffError):
    """A diff file that is corrupt, truncated, of an unknown format or version."""


class BaseMismatchError(LvdiffError):
    """The target's base does not hold the data the diff was made against."""


class CommandError(LvdiffError):
    """An external command (lvs, dmsetup, thin_delta...) failed or is missing."""


class MetadataSnapshotHeldError(LvdiffError):
    """The pool's one metadata snapshot is held by someone else."""

# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""zstd frames of format 2 DATA records (docs/format.md, "Version 2"): each record one
independent frame with its content size in its header, decompressed into exactly the
record's length and never more: a frame in a diff is untrusted (a decompression bomb).

The python ``zstandard`` binding (Debian 12's 0.20 and later) is imported only if present:
MissingLibraryError only when a frame is to be made or read.
"""

from __future__ import annotations

from ansible_collections.lvdiff.thin.plugins.module_utils._errors import MissingLibraryError

try:
    import zstandard
    HAS_ZSTANDARD = True
    ZSTANDARD_IMPORT_ERROR = None
except ImportError as e:  # pragma: no cover - exercised by the sanity import test
    zstandard = None
    HAS_ZSTANDARD = False
    ZSTANDARD_IMPORT_ERROR = e

ALGORITHM = 'zstd'
MIN_LEVEL, MAX_LEVEL = 1, 19
FRAME_MAGIC = b'\x28\xb5\x2f\xfd'
# Only to tell how far a refused frame goes: a frame needing a larger window is refused anyway.
_DIAGNOSE_WINDOW = 1 << 25


class BadFrame(ValueError):
    """A frame that breaks a rule; the message says which. Readers add the record and offset."""


def require(needed_for):
    if not HAS_ZSTANDARD:
        raise MissingLibraryError('zstandard', needed_for, ZSTANDARD_IMPORT_ERROR)


class Compressor:
    """One frame per call, at a fixed level, with the content size written (a reader needs it)
    and no checksum of its own (the record's CRC and tag cover the frame)."""

    def __init__(self, level):
        require('compressing a diff (zstd)')
        self._cctx = zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=False)

    def compress(self, data):
        return self._cctx.compress(data)


class Decompressor:
    """decompress(frame, length): the length bytes that frame holds, or BadFrame."""

    def __init__(self):
        require('reading a compressed diff (zstd)')
        self._dctx = zstandard.ZstdDecompressor()
        self._one_shot = _strict_one_shot(self._dctx)

    def decompress(self, frame, length):
        if bytes(frame[:4]) != FRAME_MAGIC:
            raise BadFrame('the payload is not a zstd frame (it starts with %r)' % bytes(frame[:4]))
        try:
            declared = zstandard.frame_content_size(frame)
            params = zstandard.get_frame_parameters(frame)
        except zstandard.ZstdError as e:
            raise BadFrame('unreadable zstd frame header: %s' % e)
        if declared < 0:
            raise BadFrame('the zstd frame does not declare its content size')
        if declared != length:
            raise BadFrame('the zstd frame declares %d bytes of content, not its length %d' % (declared, length))
        if params.dict_id:
            raise BadFrame('the zstd frame needs dictionary %d (frames here use none)' % params.dict_id)
        if self._one_shot:
            # One call into a buffer of exactly length bytes, any byte after the frame refused: zstd decodes the
            # whole frame in one pass. For 4 MiB records, 7-10 MiB less peak RSS than decompressobj (its output
            # chunks and their join) and about 10% faster. A frame it refuses goes the streaming way below,
            # which says what is wrong with it.
            try:
                out = self._dctx.decompress(frame, max_output_size=length, read_across_frames=False,
                                            allow_extra_data=False)
            except zstandard.ZstdError:
                out = None
            if out is not None and len(out) == length:
                return out
        # The content size is known and checked: zstd refuses to produce more than it declares,
        # so the output (and zstd's buffer, min(window, content size)) stays within length.
        dobj = self._dctx.decompressobj(write_size=max(length, 1))
        try:
            out = dobj.decompress(frame)
        except zstandard.ZstdError:
            raise BadFrame(self._diagnose(frame, length))
        if not dobj.eof:
            raise BadFrame('the zstd frame is truncated: it ends before its last block')
        if dobj.unused_data:
            raise BadFrame('%d bytes follow the zstd frame in the payload' % len(dobj.unused_data))
        if len(out) != length:  # zstd checks this itself; a second look costs nothing
            raise BadFrame('decompresses to %d bytes, not its length %d' % (len(out), length))
        return out

    def _diagnose(self, frame, length):
        """Why a frame that declares length bytes failed: decoded again without its declared size, reading at
        most length + 1 bytes (bounded whatever the frame holds), to say how much it really holds."""
        try:
            reader = zstandard.ZstdDecompressor(max_window_size=_DIAGNOSE_WINDOW).stream_reader(
                _without_content_size(frame), read_across_frames=False)
            got = 0
            while got <= length:
                piece = reader.read(length + 1 - got)
                if not piece:
                    break
                got += len(piece)
        except (zstandard.ZstdError, ValueError) as e:
            return 'not a valid zstd frame: %s' % e
        if got > length:
            return 'decompresses to more than its length %d (refused: decompression bomb)' % length
        if got < length:
            return 'decompresses to %d bytes, not its length %d' % (got, length)
        return 'not a valid zstd frame: it decodes to its length only without its declared content size'


def _strict_one_shot(dctx):
    """Whether dctx.decompress refuses bytes after the frame (allow_extra_data=False: Debian 12's 0.20 has it;
    a zstandard without it would ignore them): tried on a frame of our own."""
    frame = zstandard.ZstdCompressor(level=1, write_content_size=True).compress(b'probe')
    try:
        if dctx.decompress(frame, max_output_size=5, read_across_frames=False, allow_extra_data=False) != b'probe':
            return False
        dctx.decompress(frame + b'\0', max_output_size=5, read_across_frames=False, allow_extra_data=False)
    except TypeError:  # an older zstandard: no such arguments
        return False
    except zstandard.ZstdError:
        return True  # the byte after the frame refused
    return False


def _without_content_size(frame):
    """frame with its header's content size field removed (RFC 8878 3.1.1.1): a window descriptor replaces
    it where the frame was a single segment, whose window was its content size."""
    fhd = frame[4]
    fcs_flag, single = fhd >> 6, (fhd >> 5) & 1
    dict_len = (0, 1, 2, 4)[fhd & 3]
    fcs_len = (1 if single else 0, 2, 4, 8)[fcs_flag]
    pos = 5
    if single:
        window = int.from_bytes(frame[pos + dict_len:pos + dict_len + fcs_len], 'little') + (256 if fcs_len == 2 else 0)
        log = max(10, (max(window, 1) - 1).bit_length())
        descriptor = bytes([(log - 10) << 3])
    else:
        descriptor = bytes(frame[pos:pos + 1])
        pos += 1
    header = FRAME_MAGIC + bytes([fhd & 0x07]) + descriptor + bytes(frame[pos:pos + dict_len])
    return header + bytes(frame[pos + dict_len + fcs_len:])

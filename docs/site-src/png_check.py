"""Fail unless each PNG given exists and is not blank (one colour), without PIL.

Usage: python png_check.py FILE.png ...
Decodes the PNG (8-bit greyscale, RGB, palette, grey+alpha or RGBA; not interlaced, as
headless Chromium writes them), counts the distinct colours and how much of the image is not
the most common colour. A page that rendered shows text: many colours, a few % of pixels.
"""
import struct
import sys
import zlib
from collections import Counter

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode(path):
    """Return (width, height, bytes per pixel, rows as bytes)."""
    with open(path, 'rb') as f:
        data = f.read()
    if data[:8] != b'\x89PNG\r\n\x1a\n':
        raise ValueError('not a PNG')
    pos, idat, ihdr = 8, [], None
    while pos < len(data):
        length, ctype = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if ctype == b'IHDR':
            ihdr = struct.unpack('>IIBBBBB', body)
        elif ctype == b'IDAT':
            idat.append(body)
        elif ctype == b'IEND':
            break
        pos += 12 + length
    width, height, depth, colour, _c, _f, interlace = ihdr
    if depth != 8 or interlace or colour not in CHANNELS:
        raise ValueError('unsupported PNG (depth %d, colour type %d, interlace %d)' % (depth, colour, interlace))
    bpp = CHANNELS[colour]
    raw = zlib.decompress(b''.join(idat))
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        ftype, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + ((a + b) >> 1)) & 0xFF
            elif ftype == 4:
                line[i] = (line[i] + _paeth(a, b, c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def check(path):
    try:
        width, height, bpp, rows = decode(path)
    except (OSError, ValueError, zlib.error, TypeError) as e:
        return False, '%s: cannot read: %s' % (path, e)
    colours = Counter()
    for row in rows[::2]:  # every other row is plenty
        for x in range(0, len(row), bpp * 2):
            colours[row[x:x + bpp]] += 1
    total = sum(colours.values())
    top = colours.most_common(1)[0][1]
    other = 1 - top / total
    msg = '%s: %dx%d, %d colours, %.1f%% not background' % (path, width, height, len(colours), other * 100)
    return len(colours) >= 8 and other >= 0.005, msg


def main():
    ok = True
    for path in sys.argv[1:]:
        good, msg = check(path)
        print(('ok    ' if good else 'BLANK ') + msg)
        ok = ok and good
    return 0 if ok and sys.argv[1:] else 1


if __name__ == '__main__':
    sys.exit(main())

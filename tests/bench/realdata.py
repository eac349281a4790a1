"""Realistic volumes for the format 2 benchmarks, built once and cached under tests/output/bench/real/.

Two kinds of volume, each in two states (a full image is the first state, an incremental the
change from the first to the second), made without root and without mounting anything:

- ext4: `mkfs.ext4 -d` of a copy of part of this machine's /usr (files picked by a seeded
  shuffle, so binaries, libraries, text and compressed files mix as they do in /usr), about
  70% full; the second state is the same image changed with debugfs as a package upgrade
  would: files added, files rewritten with about 1% of their bytes changed, files removed.
- sqlite: a SQLite database (customers, products, orders with notes, three indexes) built
  with Python's sqlite3 and vacuumed; the second state updates about 2% of the orders (most of them among
  the newest tenth, a few anywhere), inserts 3% more and deletes 0.02% of the old ones.

A volume is a sparse file of a fixed size; its "mapped" chunks (what a thin pool would send for
a full image) are its data extents (SEEK_DATA), and an incremental's changed chunks are those
whose bytes differ between the two states (what thin_delta reports, minus chunks rewritten with
the same bytes). A Volume has the attributes of data.Scenario that run.py uses (src, base,
runs_path, chunk_size, size, changed_bytes, same_as_source) and a file of the changed bytes
(the plan's DATA extents, concatenated) for the zstd floor.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess

import _common

REAL = os.path.join(_common.OUTPUT, 'real')
CHUNK = 64 << 10
_VERSION = 3  # of what is built: bump to rebuild every cache
_SKIP_DIRS = ('/usr/local', '/usr/src')


_USR = {}


def _usr_files(seed):
    """Every regular file under /usr (readable, not empty), as (relative path, size), in a seeded order."""
    if seed not in _USR:
        _USR[seed] = _walk_usr(seed)
    return list(_USR[seed])


def _walk_usr(seed):
    found = []
    for root, dirs, files in os.walk('/usr'):
        dirs[:] = sorted(d for d in dirs if os.path.join(root, d) not in _SKIP_DIRS)
        for name in sorted(files):
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if os.path.isfile(path) and not os.path.islink(path) and 0 < st.st_size <= 32 << 20 \
                    and os.access(path, os.R_OK):
                found.append((os.path.relpath(path, '/usr'), st.st_size))
    random.Random(seed).shuffle(found)
    return found


def _take(files, budget, dirs=None):
    """The first files of the list whose blocks (their directories' too) add up to at most budget; the rest."""
    dirs = set() if dirs is None else dirs
    taken, total = [], 0
    for rel, size in files:
        new_dirs = []
        parent = os.path.dirname(rel)
        while parent and parent not in dirs:
            new_dirs.append(parent)
            parent = os.path.dirname(parent)
        # its blocks, its inode and directory entry, a block per new directory
        cost = -(-size // 4096) * 4096 + 256 + 4096 * len(new_dirs)
        if total + cost > budget:
            if total > budget * 0.95:
                break
            continue
        dirs.update(new_dirs)
        taken.append(rel)
        total += cost
    taken_set = set(taken)
    return taken, [f for f in files if f[0] not in taken_set]


def _mutated(data, rng, fraction=0.01):
    """data with about fraction of its bytes changed, in runs of 1-64 bytes (a rebuilt binary, an edited text)."""
    out = bytearray(data)
    n = len(out)
    todo = max(1, int(n * fraction))
    while todo > 0 and n:
        at = rng.randrange(n)
        run = min(rng.randint(1, 64), n - at, todo)
        out[at:at + run] = rng.randbytes(run)
        todo -= run
    return bytes(out)


def _build_ext4(d, size, seed, log):
    tree = os.path.join(d, 'tree')
    files = _usr_files(seed)
    fill, rest = _take(files, int(size * 0.65))
    for rel in fill:
        dst = os.path.join(tree, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(os.path.join('/usr', rel), dst)
    img1 = os.path.join(d, 'state1.img')
    with open(img1, 'wb') as f:
        f.truncate(size)
    # Fixed UUID and hash seed: the same tree gives the same image.
    subprocess.run(['mkfs.ext4', '-q', '-F', '-b', '4096', '-U', '6f1d6e2c-8e4a-4c55-9b1e-0123456789ab',
                    '-E', 'hash_seed=0b7e0e9a-2f4c-4f7e-8d3e-0123456789ab,root_owner=0:0', '-L', 'usr-copy',
                    '-d', tree, img1], check=True)
    log('  ext4 %s: %d files of /usr (%.0f MiB) in the first state'
        % (_common_size(size), len(fill), sum(os.path.getsize(os.path.join(tree, r)) for r in fill) / (1 << 20)))
    # The second state: an upgrade, through debugfs (no mount).
    rng = random.Random(seed + 1)
    img2 = os.path.join(d, 'state2.img')
    subprocess.run(['cp', '--sparse=always', img1, img2], check=True)
    added, dummy = _take(rest, int(size * 0.05))
    changed = rng.sample(fill, max(1, len(fill) // 12))
    removed = rng.sample(sorted(set(fill) - set(changed)), max(1, len(fill) // 100))
    tmp = os.path.join(d, 'changed')
    os.makedirs(tmp)
    script = ['mkdir /added']
    for i, rel in enumerate(added):
        script.append('write %s /added/%d-%s' % (_quote(os.path.join('/usr', rel)), i, _quote(os.path.basename(rel))))
    for i, rel in enumerate(changed):
        host = os.path.join(tmp, str(i))
        with open(os.path.join(tree, rel), 'rb') as f:
            data = f.read()
        with open(host, 'wb') as f:
            f.write(_mutated(data, rng))
        script.append('rm /%s' % _quote(rel))
        script.append('write %s /%s' % (host, _quote(rel)))
    for rel in removed:
        script.append('rm /%s' % _quote(rel))
    script_path = os.path.join(d, 'debugfs.cmds')
    with open(script_path, 'w') as f:
        f.write('\n'.join(script) + '\n')
    subprocess.run(['debugfs', '-w', '-f', script_path, img2], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    subprocess.run(['e2fsck', '-fn', img2], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log('  ext4 %s: second state: %d files added, %d rewritten, %d removed'
        % (_common_size(size), len(added), len(changed), len(removed)))
    shutil.rmtree(tree)
    shutil.rmtree(tmp)
    os.unlink(script_path)
    return img1, img2


def _quote(path):
    if any(c in path for c in ' "\t\n'):
        return '"%s"' % path.replace('"', '\\"')
    return path


_SYLLABLES = ['ka', 'lo', 'mi', 'ne', 'ra', 'to', 'su', 'vi', 'den', 'mar', 'sel', 'tor', 'ban', 'qui', 'lin',
              'hof', 'ber', 'gan', 'ist', 'ova', 'ez', 'son', 'ter', 'al', 'ric', 'mon', 'pel', 'dra']
_CITIES = ['Lyon', 'Porto', 'Graz', 'Tartu', 'Gent', 'Brno', 'Turku', 'Bergen', 'Cork', 'Leiden', 'Basel', 'Split']
_STATUSES = ['new', 'paid', 'packed', 'shipped', 'delivered', 'returned', 'cancelled']


def _word(rng):
    return ''.join(rng.choice(_SYLLABLES) for dummy in range(rng.randint(1, 3)))


def _note(rng, words):
    return ' '.join(rng.choice(words) for dummy in range(rng.randint(3, 18))).capitalize() + '.'


def _order(rng, oid, n_customers, n_products, words):
    return (oid, rng.randrange(1, n_customers + 1), rng.randrange(1, n_products + 1),
            '2026-%02d-%02dT%02d:%02d:%02dZ' % (rng.randint(1, 12), rng.randint(1, 28), rng.randrange(24),
                                                rng.randrange(60), rng.randrange(60)),
            rng.choice(_STATUSES), rng.randint(1, 9), round(rng.uniform(1, 500), 2),
            _note(rng, words) if rng.random() < 0.6 else None)


def _build_sqlite(d, size, seed, log):
    """A database of about size bytes (a little less), then its second state."""
    rng = random.Random(seed)
    words = sorted(set(_word(rng) for dummy in range(3000)))
    db1 = os.path.join(d, 'state1.sqlite')
    con = sqlite3.connect(db1)
    con.executescript('''
        PRAGMA page_size = 4096;
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE,
                                city TEXT, created TEXT NOT NULL);
        CREATE TABLE products (id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, title TEXT NOT NULL,
                               price REAL NOT NULL, description TEXT);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
                             product_id INTEGER NOT NULL REFERENCES products(id), ts TEXT NOT NULL,
                             status TEXT NOT NULL, quantity INTEGER NOT NULL, amount REAL NOT NULL, note TEXT);
        CREATE INDEX orders_customer ON orders(customer_id);
        CREATE INDEX orders_ts ON orders(ts);
        CREATE INDEX orders_status ON orders(status, ts);
    ''')
    n_customers = max(100, size // 2200)
    n_products = max(50, size // 40000)
    n_orders = max(1000, size // 210)
    con.executemany('INSERT INTO customers VALUES (?, ?, ?, ?, ?)', (
        (i, '%s %s' % (_word(rng).capitalize(), _word(rng).capitalize()), 'c%d.%s@example.org' % (i, _word(rng)),
         rng.choice(_CITIES), '20%02d-%02d-%02d' % (rng.randint(10, 26), rng.randint(1, 12), rng.randint(1, 28)))
        for i in range(1, n_customers + 1)))
    con.executemany('INSERT INTO products VALUES (?, ?, ?, ?, ?)', (
        (i, 'SKU-%06d' % i, ' '.join(_word(rng) for dummy in range(3)).title(), round(rng.uniform(1, 300), 2),
         _note(rng, words)) for i in range(1, n_products + 1)))
    con.executemany('INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
                    (_order(rng, i, n_customers, n_products, words) for i in range(1, n_orders + 1)))
    con.commit()
    con.execute('VACUUM')  # each table and index in pages of its own, as after maintenance
    con.close()
    db2 = os.path.join(d, 'state2.sqlite')
    shutil.copyfile(db1, db2)
    con = sqlite3.connect(db2)
    # Mostly recent orders move on (paid, shipped...), a few old ones change (returns): hot pages and scattered ones.
    recent = range(n_orders - n_orders // 10, n_orders + 1)
    updated = sorted(set(rng.sample(recent, n_orders // 50) + rng.sample(range(1, n_orders + 1), n_orders // 5000)))
    con.executemany('UPDATE orders SET status = ?, amount = amount + ? WHERE id = ?',
                    ((rng.choice(_STATUSES), round(rng.uniform(-5, 5), 2), i) for i in updated))
    con.executemany('INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
                    (_order(rng, i, n_customers, n_products, words)
                     for i in range(n_orders + 1, n_orders + 1 + n_orders * 3 // 100)))
    deleted = rng.sample(range(1, n_orders - n_orders // 10), n_orders // 5000)
    con.executemany('DELETE FROM orders WHERE id = ?', ((i,) for i in deleted))
    con.commit()
    con.close()
    log('  sqlite %s: %d customers, %d products, %d orders (%.1f MiB); second state: %d updated, %d inserted, '
        '%d deleted (%.1f MiB)' % (_common_size(size), n_customers, n_products, n_orders,
                                   os.path.getsize(db1) / (1 << 20), len(updated), n_orders * 3 // 100,
                                   len(deleted), os.path.getsize(db2) / (1 << 20)))
    # Volumes of one size, the database at their start.
    vol = -(-max(os.path.getsize(db1), os.path.getsize(db2)) // (1 << 20)) * (1 << 20)
    out = []
    for db, name in ((db1, 'state1.img'), (db2, 'state2.img')):
        path = os.path.join(d, name)
        os.rename(db, path)
        with open(path, 'r+b') as f:
            f.truncate(vol)
        out.append(path)
    return out


def _common_size(n):
    return '%d MiB' % (n >> 20) if n < 1 << 30 else '%g GiB' % (n / (1 << 30))


def data_runs(path, chunk_size=CHUNK):
    """The chunk runs (begin, length) of path's data extents, as a thin pool maps a full image."""
    runs = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        off = 0
        while off < size:
            try:
                off = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after off
                break
            end = os.lseek(fd, off, os.SEEK_HOLE)
            b, e = off // chunk_size, -(-end // chunk_size)
            if runs and runs[-1][0] + runs[-1][1] >= b:
                runs[-1][1] = max(runs[-1][1], e - runs[-1][0])
            else:
                runs.append([b, e - b])
            off = e * chunk_size
    finally:
        os.close(fd)
    return [tuple(r) for r in runs]


def changed_runs(a, b, chunk_size=CHUNK):
    """The chunk runs where files a and b (of one size) differ."""
    runs = []
    with open(a, 'rb') as fa, open(b, 'rb') as fb:
        c = 0
        while True:
            x, y = fa.read(chunk_size), fb.read(chunk_size)
            if not x and not y:
                break
            if x != y:
                if runs and runs[-1][0] + runs[-1][1] == c:
                    runs[-1][1] += 1
                else:
                    runs.append([c, 1])
            c += 1
    return [tuple(r) for r in runs]


def states(kind, size, seed=1, log=print):
    """(state1, state2, info) of a cached volume of this kind and size, built if missing."""
    key = '%s-%d-s%d-v%d' % (kind, size, seed, _VERSION)
    d = os.path.join(REAL, key)
    info_path = os.path.join(d, 'info.json')
    if os.path.exists(info_path):
        with open(info_path) as f:
            return os.path.join(d, 'state1.img'), os.path.join(d, 'state2.img'), json.load(f)
    tmp = d + '.building.%d' % os.getpid()
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    log('  building %s volumes of %s (cached afterwards) ...' % (kind, _common_size(size)))
    if kind == 'ext4':
        s1, s2 = _build_ext4(tmp, size, seed, log)
    else:
        s1, s2 = _build_sqlite(tmp, size, seed, log)
    info = {'kind': kind, 'size': os.path.getsize(s1), 'seed': seed,
            'full_runs': data_runs(s1), 'incremental_runs': changed_runs(s1, s2)}
    with open(os.path.join(tmp, 'info.json'), 'w') as f:
        json.dump(info, f)
    shutil.rmtree(d, ignore_errors=True)
    os.rename(tmp, d)
    return os.path.join(d, 'state1.img'), os.path.join(d, 'state2.img'), info


class Volume:
    """One benchmark case on a real volume: a full image of state 1, or the incremental from state 1 to 2.
    prepare() writes the runs and the changed bytes into the work directory; remove() deletes them."""

    def __init__(self, work, kind, size, incremental, log=print):
        self.dir = work
        self.kind = kind
        self.incremental = incremental
        s1, s2, info = states(kind, size, log=log)
        self.size = info['size']
        self.chunk_size = CHUNK
        self.nr_chunks = -(-self.size // CHUNK)
        self.src, self.base = (s2, s1) if incremental else (s1, None)
        self.runs = [tuple(r) for r in info['incremental_runs' if incremental else 'full_runs']]
        self.changed_chunks = sum(n for _b, n in self.runs)
        self.changed_bytes = sum(min((b + n) * CHUNK, self.size) - b * CHUNK for b, n in self.runs)
        self.runs_path = os.path.join(work, 'runs.json')
        self.changed_path = os.path.join(work, 'changed.bin')

    @property
    def label(self):
        return '%s %s, %s' % (self.kind, _common_size(self.size), 'incremental' if self.incremental else 'full')

    def prepare(self):
        """The runs for the child, and the changed bytes (the plan's DATA, in order) for the floor: their sha1."""
        os.makedirs(self.dir, exist_ok=True)
        with open(self.runs_path, 'w') as f:
            json.dump(self.runs, f)
        h = hashlib.sha1()
        with open(self.src, 'rb') as src, open(self.changed_path, 'wb') as out:
            for b, n in self.runs:
                src.seek(b * CHUNK)
                left = min((b + n) * CHUNK, self.size) - b * CHUNK
                while left:
                    block = src.read(min(left, 8 << 20))
                    out.write(block)
                    h.update(block)
                    left -= len(block)
        return h.hexdigest()

    def same_as_source(self, path):
        """True if path holds the source's bytes in every changed run, and has its size."""
        with open(path, 'rb') as a, open(self.src, 'rb') as b:
            for begin, length in self.runs:
                off, n = begin * CHUNK, length * CHUNK
                if os.pread(a.fileno(), n, off) != os.pread(b.fileno(), n, off):
                    return False
        return os.path.getsize(path) == self.size

    def remove(self):
        for p in (self.runs_path, self.changed_path):
            _common.remove(p)


if __name__ == '__main__':
    # python tests/bench/realdata.py ext4|sqlite SIZE_MIB: build (or show) one cached pair of volumes
    import sys
    a, b, i = states(sys.argv[1], int(sys.argv[2]) << 20)
    print(a, b)
    print('size %d, full: %d chunks in %d runs, incremental: %d chunks in %d runs' % (
        i['size'], sum(n for _b, n in i['full_runs']), len(i['full_runs']),
        sum(n for _b, n in i['incremental_runs']), len(i['incremental_runs'])))

"""Real thin-pool metadata files for the metadata benchmarks, built once and cached.

A pool is built with tests/support/thinpool.py (thin_restore on a sparse file; 4M
fragmented takes about a minute) and kept under tests/output/bench/pools/<key>/ with
meta.json: the parameters and the truth our parsers must reproduce from the tools'
output. Delete the directory to rebuild.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

import _common  # noqa: F401  (sys.path)
import thinpool

POOLS = os.path.join(_common.OUTPUT, "pools")
BASE_ID, SNAP_ID = 1, 2
TRUTH_KEYS = ("delta_runs", "delta_data_chunks", "delta_discard_chunks", "dump_records", "dump_runs",
              "dump_chunks")


def key(nr_chunks, layout, change, discard, seed, data_block_size):
    return "%s-%d-c%g-d%g-s%s-b%d" % (layout, nr_chunks, change, discard, seed, data_block_size)


def truth(sc):
    """What Plan.add_delta / add_mapped must count from the tools' output."""
    c = sc.counts()
    delta_runs = sum(1 for dummy in sc.iter_delta(BASE_ID, SNAP_ID))
    records = 0  # <single_mapping>/<range_mapping> elements thin_dump --dev-id SNAP prints
    for _run in sc.dump_runs(SNAP_ID):
        records += 1
    mapped_runs = 0
    end = -1
    for o, _d, n in sc.mappings(SNAP_ID):
        if o != end:
            mapped_runs += 1
        end = o + n
    return {
        "delta_runs": delta_runs,
        # --snap1 BASE --snap2 SNAP, no growth: DATA = different + right_only, DISCARD = left_only
        "delta_data_chunks": c["different"] + c["right_only"],
        "delta_discard_chunks": c["left_only"],
        "dump_records": records,
        "dump_runs": mapped_runs,
        "dump_chunks": sc.mapped_chunks(SNAP_ID),
    }


def get(nr_chunks, layout, change=0.05, discard=0.01, seed=1, data_block_size=128, log=print):
    """Path of meta.bin and its meta.json contents, building them if not cached."""
    k = key(nr_chunks, layout, change, discard, seed, data_block_size)
    d = os.path.join(POOLS, k)
    info_path = os.path.join(d, "meta.json")
    if os.path.exists(info_path):
        with open(info_path) as f:
            info = json.load(f)
        if set(TRUTH_KEYS) <= set(info["truth"]):
            return os.path.join(d, "meta.bin"), info
        log("  pool %s was cached by an older version: rebuilding" % k)
    tmp = d + ".building.%d" % os.getpid()
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    t0 = time.monotonic()
    log("  building pool %s (cached afterwards) ..." % k)
    sc = thinpool.snapshot_pair(nr_chunks, layout, change, discard_fraction=discard, seed=seed,
                                data_block_size=data_block_size)
    xml = os.path.join(tmp, "pool.xml")
    xml_size = sc.write_xml(xml)
    restore_s = sc.restore(xml, os.path.join(tmp, "meta.bin"))
    os.unlink(xml)
    info = {
        "key": k, "nr_chunks": nr_chunks, "layout": layout, "change": change, "discard": discard,
        "seed": seed, "data_block_size": data_block_size, "chunk_size": data_block_size * 512,
        "base_id": BASE_ID, "snap_id": SNAP_ID, "counts": sc.counts(), "truth": truth(sc),
        "xml_bytes": xml_size, "thin_restore_seconds": round(restore_s, 2),
    }
    del sc
    with open(os.path.join(tmp, "meta.json"), "w") as f:
        json.dump(info, f, indent=1, sort_keys=True)
    shutil.rmtree(d, ignore_errors=True)
    os.rename(tmp, d)
    log("  built %s in %.1f s (thin_restore %.1f s, XML %.0f MB)"
        % (k, time.monotonic() - t0, restore_s, xml_size / 1e6))
    return os.path.join(d, "meta.bin"), info


if __name__ == "__main__":
    # python tests/bench/pools.py NR_CHUNKS LAYOUT: build (or show) one cached pool
    path, info = get(int(sys.argv[1]), sys.argv[2])
    print(path)
    print(json.dumps(info, indent=1, sort_keys=True))

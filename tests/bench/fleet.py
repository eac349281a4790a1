"""Fleet benchmark (issue 11): the role lvdiff.thin.replicate on one host with N volumes, in the guest.

    make bench-fleet                                  # N = 1 8 32 (FLEET_SIZES); tests/output/bench/fleet.md
    .venv/bin/python tests/bench/fleet.py --smoke     # N = 2, one ping each, no module pair (CI)
    .venv/bin/python tests/bench/fleet.py --sizes 1 8 [--out FILE]   # also FILE.json, the raw numbers
    .venv/bin/python tests/bench/fleet.py --render FILE.json            # its report again

For each N: N thin volumes of 64 MiB on src:vgsrc/pool with 4 MiB of data each; the role's first
run, then 256 KiB written at a random offset of each volume and the incremental run, then an
unchanged run; each timed on the controller (wall), with the tasks the src recap line counts
(ok + failed; skipped apart). The role is driven only through its variables
(tests/bench/fleet/replicate.yml), so the same harness measures any engine behind them. After every
run each volume's result is checked (status, cycle kind) and, for a sample, the newest replica's
SHA-1 against its source's: a wrong replica fails the benchmark. Timings are reported, not asserted.

Floors, measured in the same run: `ansible -m ping` on src and on dst (median of 3 each; src's again
after the runs); a shell loop on src that copies each volume's changed bytes with dd and hashes them
with sha1sum (the per-volume floor of the issue), and the same loop sending them to dst over SSH; the
single-volume module pair (ad hoc lvdiff on src, lvpatch on dst, one incremental of 256 KiB) against ping.

The guest (tests/guest) is booted and always stopped, unless FLEET_GUEST_RUNNING=1 says that the
caller (tests/integration/run.sh) runs it; GUEST_OUT names its directory as for tests/guest.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import _common
from _common import MiB, median

PLAYBOOK = os.path.join(_common.HERE, "fleet", "replicate.yml")
GUEST_OUT = os.environ.get("GUEST_OUT") or os.path.join(_common.REPO, "tests", "output", "guest")
ANSIBLE_BIN = os.path.join(_common.REPO, ".venv", "bin")
VOL_MIB, DATA_MIB, CHANGE_KIB = 64, 4, 256
SAMPLE = 8            # volumes whose replica is hashed after each run (all when N <= SAMPLE)
PREFIX = "fleet-"     # every bench volume; replicas are src-vgsrc-fleet-...
SPOOL = "/tmp/fleet"  # the role's spool dirs and the floors' files, on both hosts (one file system)
KINDS = {"first": "full", "incremental": "incremental", "unchanged": "unchanged"}


class BenchError(Exception):
    pass


def log(msg):
    print("fleet: %s" % msg, flush=True)


# --- the guest ---------------------------------------------------------------------------------


def guest_env():
    """The plain VAR=value lines of the guest's env.sh (inventory, ports)."""
    env = {}
    with open(os.path.join(GUEST_OUT, "env.sh")) as f:
        for line in f:
            m = re.match(r"^(GUEST_[A-Z_]+)=([^\s(]+)$", line.strip())
            if m:
                env[m.group(1)] = m.group(2)
    return env


def sh(host, script, timeout=1800):
    """Run a bash script (on stdin) on a guest host through env.sh's guest_ssh; its stdout."""
    cmd = ["bash", "-c", 'source "$1" && guest_ssh "$2" bash -s', "_", os.path.join(GUEST_OUT, "env.sh"), host]
    p = subprocess.run(cmd, input="set -euo pipefail\n" + script, capture_output=True, text=True, timeout=timeout,
                       check=False)
    if p.returncode != 0:
        raise BenchError("on %s (rc=%d): %s\n%s" % (host, p.returncode, script.strip()[:300], p.stderr[-2000:]))
    return p.stdout


def ansible_env():
    env = dict(os.environ)
    env.update(ANSIBLE_COLLECTIONS_PATH=_common.ROOT,
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_RETRY_FILES_ENABLED="0",
               ANSIBLE_CALLBACK_RESULT_FORMAT="json",
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(_common.HERE, "fleet", "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="task_times")
    return env


def timed(cmd, logfile=None, env=None):
    """Run cmd on the controller; (wall seconds, stdout). Fails with the output's tail."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=dict(ansible_env(), **(env or {})), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if logfile:
        with open(logfile, "w") as f:
            f.write(p.stdout + p.stderr)
    if p.returncode != 0:
        raise BenchError("%s failed (rc=%d)%s:\n%s" % (" ".join(cmd[:4]), p.returncode,
                         " (log %s)" % logfile if logfile else "", (p.stdout + p.stderr)[-3000:]))
    return wall, p.stdout


def adhoc(inventory, host, module, args):
    """An ad hoc module run; (wall seconds, result dict)."""
    wall, out = timed([os.path.join(ANSIBLE_BIN, "ansible"), "-i", inventory, host, "-m", module, "-a", args])
    return wall, json.loads(out[out.index("{"):])


PING_RUNS = 3  # --smoke: 1


def pings(inventory, host):
    return [adhoc(inventory, host, "ansible.builtin.ping", "")[0] for _run in range(PING_RUNS)]


def ping(inventory, host):
    return median(pings(inventory, host))


# --- volumes -----------------------------------------------------------------------------------


def cleanup():
    """Remove every bench volume, snapshot and replica, and the spool dirs (both hosts)."""
    rm = "lvs --noheadings -o lv_name {vg} | awk '$1 ~ /^{pat}/ {{print \"{vg}/\" $1}}' | xargs -r lvremove -qq -y\n"
    sh("src", rm.format(vg="vgsrc", pat=PREFIX) + "rm -rf %s" % SPOOL)
    sh("dst", rm.format(vg="vgdst", pat="(src-vgsrc-)?" + PREFIX) + "rm -rf %s" % SPOOL)


def pool_free_mib(host, vg):
    out = sh(host, "lvs --noheadings --units m --nosuffix -o lv_size,data_percent %s/pool" % vg).split()
    size, pct = float(out[0]), float(out[1])
    return size * (100 - pct) / 100


def names(n):
    return ["%s%03d" % (PREFIX, i) for i in range(n)]


def create_volumes(vols, rng):
    script = "".join(
        "lvcreate -qq -T vgsrc/pool -V %dm -n %s\n"
        "dd if=/dev/urandom of=/dev/vgsrc/%s bs=1M count=%d seek=%d conv=fsync status=none\n"
        % (VOL_MIB, lv, lv, DATA_MIB, rng.randrange(VOL_MIB - DATA_MIB + 1)) for lv in vols)
    sh("src", script)


def write_changes(vols, rng):
    """256 KiB of new data at a random 4 KiB-aligned offset of each volume -> {lv: offset in 4 KiB blocks}."""
    offsets = {lv: rng.randrange((VOL_MIB * MiB - CHANGE_KIB * 1024) // 4096 + 1) for lv in vols}
    sh("src", "".join("dd if=/dev/urandom of=/dev/vgsrc/%s bs=4k count=%d seek=%d conv=fsync status=none\n"
                      % (lv, CHANGE_KIB // 4, offsets[lv]) for lv in vols))
    return offsets


def shell_floors(offsets):
    """Seconds of two shell loops on src over the volumes' changed bytes: dd | sha1sum into a file
    (the issue's per-volume floor), and dd | ssh dst 'cat > f && sha1sum f' (the same, host to host)."""
    local = "".join("dd if=/dev/vgsrc/{lv} iflag=direct bs=4k count={c} skip={o} status=none"
                    " | tee {d}/{lv} | sha1sum >/dev/null\n".format(lv=lv, c=CHANGE_KIB // 4, o=o, d=SPOOL + "/floor")
                    for lv, o in offsets.items())
    remote = "".join("dd if=/dev/vgsrc/{lv} iflag=direct bs=4k count={c} skip={o} status=none"
                     " | ssh dst 'cat > {d}/{lv}.r && sha1sum {d}/{lv}.r >/dev/null'\n"
                     .format(lv=lv, c=CHANGE_KIB // 4, o=o, d=SPOOL + "/floor") for lv, o in offsets.items())
    out = sh("src", "mkdir -p {d}/floor\n"
             "t0=$(date +%s%N)\n{local}t1=$(date +%s%N)\n{remote}t2=$(date +%s%N)\n"
             "rm -rf {d}/floor\necho $((t1 - t0)) $((t2 - t1))".format(d=SPOOL, local=local, remote=remote))
    a, b = out.split()
    return int(a) / 1e9, int(b) / 1e9


def sha1_script(vg, lv, activate):
    """Shell lines printing the SHA-1 of vg/lv (activated for the read and deactivated after, if asked)."""
    if not activate:
        return "sha1sum /dev/%s/%s | cut -c1-40\n" % (vg, lv)
    return ("lvchange -qq -ay -K {vg}/{lv}\nsha1sum /dev/{vg}/{lv} | cut -c1-40\nlvchange -qq -an {vg}/{lv}\n"
            .format(vg=vg, lv=lv))


def verify(results, vols, phase, rng):
    """Every volume's result as the phase expects; the newest replica of a sample equals its source."""
    by_lv = {r.get("lv"): r for r in results}
    want = KINDS[phase]
    for lv in vols:
        r = by_lv.get(lv)
        if r is None:
            raise BenchError("%s run: no result for vgsrc/%s" % (phase, lv))
        kinds = [c.get("kind") for c in r.get("cycles", [])]
        if r.get("status") != "ok" or kinds != [want]:
            raise BenchError("%s run: vgsrc/%s: status %s, cycles %s (expected ok, [%s]): %s"
                             % (phase, lv, r.get("status"), kinds, want, r.get("summary") or r.get("error")))
        if phase == "unchanged" and int(r.get("bytes_sent", -1)) != 0:
            raise BenchError("unchanged run: vgsrc/%s sent %s bytes" % (lv, r.get("bytes_sent")))
    sample = vols if len(vols) <= SAMPLE else [vols[0], vols[-1]] + rng.sample(vols[1:-1], SAMPLE - 2)
    replicas = {}
    for lv in sample:
        r = by_lv[lv]
        made = [c["replica"] for c in r["cycles"] if c.get("replica") and c.get("kind") != "unchanged"]
        replicas[lv] = made[-1] if made else r.get("replica")
        if not replicas[lv]:
            raise BenchError("%s run: vgsrc/%s: no replica named in its result" % (phase, lv))
    src = sh("src", "".join(sha1_script("vgsrc", lv, False) for lv in sample)).split()
    dst = sh("dst", "".join(sha1_script("vgdst", replicas[lv], True) for lv in sample)).split()
    for lv, a, b in zip(sample, src, dst):
        if a != b:
            raise BenchError("%s run: replica vgdst/%s (sha1 %s) differs from vgsrc/%s (sha1 %s)"
                             % (phase, replicas[lv], b, lv, a))
    return len(sample)


# --- the role ----------------------------------------------------------------------------------


RECAP = re.compile(r"^src\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)", re.M)


def run_role(inventory, vols, phase, n, logdir):
    """One ansible-playbook run of the role on src -> dict(wall, tasks, skipped, sent, results)."""
    vars_file = os.path.join(logdir, "vars-%d.json" % n)
    results_file = os.path.join(logdir, "results-%d-%s.json" % (n, phase))
    with open(vars_file, "w") as f:
        json.dump({"fleet_volumes": [{"vg": "vgsrc", "lv": lv} for lv in vols], "fleet_results": results_file}, f)
    _common.remove(results_file)
    logfile = os.path.join(logdir, "run-%d-%s.log" % (n, phase))
    times_file = os.path.join(logdir, "tasks-%d-%s.json" % (n, phase))
    _common.remove(times_file)
    wall, out = timed([os.path.join(ANSIBLE_BIN, "ansible-playbook"), "-i", inventory, PLAYBOOK,
                       "-e", "@" + vars_file], logfile, env={"FLEET_TASK_TIMES": times_file})
    m = RECAP.search(out)
    if not m:
        raise BenchError("no recap line for src in %s" % logfile)
    ok, _changed, _unreach, failed, skipped = map(int, m.groups())
    with open(results_file) as f:
        results = json.load(f)
    sent = sum(int(r.get("bytes_sent", 0)) for r in results)
    with open(times_file) as f:
        profile = [t for t in json.load(f) if t[2] != "skipped"]
    # the harness's own play (saving replicate_results) is not the role's time
    harness = sum(sec for name, sec, _st in profile if name.startswith("Fleet bench |"))
    return dict(wall=wall - harness, harness=harness, tasks=ok + failed, skipped=skipped, sent=sent,
                results=results, profile=profile)


# --- the single-volume module pair -------------------------------------------------------------


def module_pair(inventory, rng):
    """One incremental of CHANGE_KIB through ad hoc lvdiff on src and lvpatch on dst -> (lvdiff s, lvpatch s)."""
    v, d = PREFIX + "pair", SPOOL + "/pair"
    sh("src", "lvcreate -qq -T vgsrc/pool -V {m}m -n {v}\n"
              "dd if=/dev/urandom of=/dev/vgsrc/{v} bs=1M count={c} conv=fsync status=none\n"
              "lvcreate -qq -s -pr -n {v}-s1 vgsrc/{v}\nmkdir -p {d}".format(v=v, m=VOL_MIB, c=DATA_MIB, d=d))
    # the base: a full image of s1 restored on dst (not timed)
    adhoc(inventory, "src", "lvdiff.thin.lvdiff", "vg=vgsrc lv=%s-s1 dest=%s/s1.lvdiff" % (v, d))
    adhoc(inventory, "dst", "lvdiff.thin.lvpatch", "src=%s/s1.lvdiff vg=vgdst pool=pool name=%s-s1" % (d, v))
    sh("src", "dd if=/dev/urandom of=/dev/vgsrc/{v} bs=4k count={c} seek={o} conv=fsync status=none\n"
              "lvcreate -qq -s -pr -n {v}-s2 vgsrc/{v}".format(
                  v=v, c=CHANGE_KIB // 4, o=rng.randrange((VOL_MIB * MiB - CHANGE_KIB * 1024) // 4096 + 1)))
    t_diff, res = adhoc(inventory, "src", "lvdiff.thin.lvdiff", "vg=vgsrc lv=%s-s2 base=%s-s1 dest=%s/s2.lvdiff"
                        % (v, v, d))
    if not res.get("changed") or not res.get("data_chunks"):
        raise BenchError("module pair: lvdiff wrote no incremental: %s" % res)
    t_patch, res = adhoc(inventory, "dst", "lvdiff.thin.lvpatch", "src=%s/s2.lvdiff vg=vgdst base=%s-s1 name=%s-s2"
                         % (d, v, v))
    if not res.get("changed"):
        raise BenchError("module pair: lvpatch made nothing: %s" % res)
    a = sh("src", sha1_script("vgsrc", v + "-s2", True)).strip()
    b = sh("dst", sha1_script("vgdst", v + "-s2", True)).strip()
    if a != b:
        raise BenchError("module pair: vgdst/%s-s2 (sha1 %s) differs from vgsrc/%s-s2 (sha1 %s)" % (v, b, v, a))
    return t_diff, t_patch


# --- one size ----------------------------------------------------------------------------------


def bench_size(inventory, n, rng, logdir, row, save):
    """Fill row with N=n's floors and runs, calling save() after each step (an interrupted run keeps them)."""
    cleanup()
    need = n * (DATA_MIB + 2 * CHANGE_KIB / 1024) + 64   # data + changes (+ a margin for the pair)
    for host, vg in (("src", "vgsrc"), ("dst", "vgdst")):
        free = pool_free_mib(host, vg)
        if free < need:
            raise BenchError("%s/pool on %s has %.0f MiB free, N=%d needs about %.0f" % (vg, host, free, n, need))
    vols = names(n)
    log("N=%d: creating %d volumes" % (n, n))
    create_volumes(vols, rng)
    src_pings = pings(inventory, "src")
    row.update(n=n, ping_dst=ping(inventory, "dst"), ping_src=median(src_pings),
               ping_src_range=(min(src_pings), max(src_pings)))
    log("N=%d: ping src %.2f s, dst %.2f s" % (n, row["ping_src"], row["ping_dst"]))
    for phase in ("first", "incremental", "unchanged"):
        if phase == "incremental":
            offsets = write_changes(vols, rng)
            row["floor_local"], row["floor_ssh"] = shell_floors(offsets)
            log("N=%d: shell floors: dd|sha1sum %.2f s, over ssh %.2f s" % (n, row["floor_local"], row["floor_ssh"]))
        log("N=%d: %s run" % (n, phase))
        r = run_role(inventory, vols, phase, n, logdir)
        r["checked"] = verify(r.pop("results"), vols, phase, rng)
        row[phase] = r
        save()
        log("N=%d: %s run %.1f s, %d tasks on src (%d skipped), %d bytes sent; %d replicas verified"
            % (n, phase, r["wall"], r["tasks"], r["skipped"], r["sent"], r["checked"]))
    # src's ping again after the runs: the machine's load moves during them (the median of all)
    src_pings += pings(inventory, "src")
    row["ping_src"], row["ping_src_range"] = median(src_pings), (min(src_pings), max(src_pings))
    save()
    cleanup()


# --- report ------------------------------------------------------------------------------------


def s(x):
    """Seconds as the tables show them."""
    return "%.1f" % x if x >= 10 else "%.2f" % x


def report(rows, pair, pair_pings, meta):
    out = ["## Fleet: the replicate role, N volumes on one host (%s)" % meta["date"], "",
           "Commit %s; controller load before %s, after %s. Each volume 64 MiB with 4 MiB of data; the "
           "incremental writes 256 KiB at a random offset of each. Ratios as in issue 11's targets. Wall: "
           "ansible-playbook's, less the harness's own play that saves the results (under 1 s)." % (
               meta["commit"], meta["load_before"], meta["load_after"]), "",
           "| N | run | wall s | s per volume | tasks on src (ok+failed) | skipped | s per task | MiB sent | ratio"
           " | target (at N=32) |",
           "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        n = row["n"]
        for phase in ("first", "incremental", "unchanged"):
            if phase not in row:   # an interrupted run
                continue
            r = row[phase]
            per = r["wall"] / n
            ratio, target = "-", "-"
            if phase == "incremental":
                # issue 11: time per volume at most 3x the shell floor per volume, plus one ping
                floor = row["floor_local"] / n
                ratio = "%.1fx 3x floor" % (per / (3 * floor))
                goal = 3 * floor + row["ping_src"]
                target = "%s s <= %s s: %s" % (s(per), s(goal), "met" if per <= goal else "missed")
            elif phase == "unchanged":
                ratio = "%.1fx ping" % (r["wall"] / row["ping_src"])
                target = "< 3x ping: %s" % ("met" if r["wall"] < 3 * row["ping_src"] else "missed")
            out.append("| %d | %s | %s | %s | %d | %d | %.2f | %.2f | %s | %s |" % (
                n, phase, s(r["wall"]), s(per), r["tasks"], r["skipped"], r["wall"] / max(r["tasks"], 1),
                r["sent"] / MiB, ratio, target))
    out += ["", "Floors, measured in the same run (before each N's runs; the shell loops on src, timed there):", "",
            "| N | ping src s (median of the pings before and after the runs; range) | ping dst s"
            " | dd \\| sha1sum loop s (per volume) |"
            " dd \\| ssh dst 'cat > f && sha1sum f' loop s (per volume) |",
            "|---:|---:|---:|---:|---:|"]
    for row in (r for r in rows if "floor_local" in r):
        n = row["n"]
        out.append("| %d | %s (%s-%s) | %s | %s (%.3f) | %s (%.3f) |" % (
            n, s(row["ping_src"]), s(row["ping_src_range"][0]), s(row["ping_src_range"][1]), s(row["ping_dst"]),
            s(row["floor_local"]), row["floor_local"] / n,
            s(row["floor_ssh"]), row["floor_ssh"] / n))
    if pair:
        (t_diff, t_patch), (p_src, p_dst) = pair, pair_pings
        out += ["", "Single-volume module pair, one incremental of 256 KiB (ad hoc, wall on the controller):", "",
                "| what | s | against ping |", "|---|---:|---:|",
                "| `ansible src -m lvdiff.thin.lvdiff` | %s | %.1fx ping src |" % (s(t_diff), t_diff / p_src),
                "| `ansible dst -m lvdiff.thin.lvpatch` | %s | %.1fx ping dst |" % (s(t_patch), t_patch / p_dst),
                "| the pair | %s | %.1fx (ping src + ping dst) |" % (
                    s(t_diff + t_patch), (t_diff + t_patch) / sum(pair_pings))]
    out += profile(rows)
    out += ["", "Tasks on src per run, by N (%s): %s." % (", ".join(str(row["n"]) for row in rows), "; ".join(
        "%s %s" % (ph, "/".join(str(row[ph]["tasks"]) if ph in row else "-" for row in rows))
        for ph in ("first", "incremental", "unchanged")))]
    return "\n".join(out) + "\n"


def profile(rows):
    """The largest N's runs, task by task (the callback task_times): where the time goes."""
    row = max((r for r in rows if "first" in r and "profile" in r["first"]), key=lambda r: r["n"], default=None)
    if row is None:
        return []
    phases = [ph for ph in ("first", "incremental", "unchanged") if ph in row]
    names = []
    for ph in phases:
        for name, _sec, _st in row[ph]["profile"]:
            if name not in names:
                names.append(name)
    out = ["", "Profile of N=%d, each task's wall time in s (tasks that ran on no host left out):" % row["n"], "",
           "| task | %s |" % " | ".join(phases), "|---|%s" % ("---:|" * len(phases))]
    for name in names:
        cells = []
        for ph in phases:
            secs = [sec for nm, sec, _st in row[ph]["profile"] if nm == name]
            cells.append(s(sum(secs)) if secs else "-")
        out.append("| %s | %s |" % (name.replace("|", "\\|"), " | ".join(cells)))
    return out


def git_commit():
    p = subprocess.run(["git", "-C", _common.REPO, "log", "-1", "--format=%h"], capture_output=True, text=True,
                       check=False)
    dirty = subprocess.run(["git", "-C", _common.REPO, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return (p.stdout.strip() or "?") + (" (with uncommitted changes)" if dirty else "")


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 32], help="numbers of volumes (default 1 8 32)")
    ap.add_argument("--smoke", action="store_true", help="N=2, one ping each, no module pair: for CI")
    ap.add_argument("--no-pair", action="store_true", help="skip the single-volume module pair")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", help="Markdown report (default tests/output/bench/fleet[-smoke].md)")
    ap.add_argument("--render", metavar="JSON", help="only write the report of the raw numbers an earlier run saved")
    args = ap.parse_args()
    if args.render:
        with open(args.render) as f:
            raw = json.load(f)
        text = report(raw["rows"], raw["pair"], raw["pings"], raw["meta"])
        with open(args.out or os.path.splitext(args.render)[0] + ".md", "w") as f:
            f.write(text)
        print(text)
        return 0
    sizes = [2] if args.smoke else args.sizes
    if args.smoke:
        global PING_RUNS
        PING_RUNS, args.no_pair = 1, True
    out = args.out or os.path.join(_common.OUTPUT, "fleet-smoke.md" if args.smoke else "fleet.md")
    logdir = os.path.join(_common.OUTPUT, "fleet-smoke" if args.smoke else "fleet")
    os.makedirs(logdir, exist_ok=True)
    rng = random.Random(args.seed)
    own_guest = os.environ.get("FLEET_GUEST_RUNNING") != "1"

    # a SIGTERM (CI's timeout) still stops the guest: it becomes an exception through the finally below
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": git_commit(), "load_before": load()}
    start_env = dict(os.environ, GUEST_OUT=GUEST_OUT)
    try:
        if own_guest:
            subprocess.run([os.path.join(_common.REPO, "tests", "guest", "start.sh")], env=start_env, check=True)
        inventory = guest_env()["GUEST_INVENTORY"]
        raw = {"rows": [], "pair": None, "pings": None, "meta": meta}

        def save():  # the raw numbers so far, for --render (also of an interrupted run)
            meta["load_after"] = load()
            with open(os.path.splitext(out)[0] + ".json", "w") as f:
                json.dump(raw, f, indent=1)

        if not args.no_pair:
            log("single-volume module pair")
            cleanup()
            raw["pings"] = (ping(inventory, "src"), ping(inventory, "dst"))
            raw["pair"] = module_pair(inventory, rng)
            log("module pair: lvdiff %.1f s, lvpatch %.1f s; ping src %.2f s, dst %.2f s"
                % (raw["pair"] + raw["pings"]))
            save()
        for n in sizes:
            raw["rows"].append({"n": n})
            bench_size(inventory, n, rng, logdir, raw["rows"][-1], save)
        save()
        text = report(raw["rows"], raw["pair"], raw["pings"], meta)
    except BenchError as e:
        print("fleet: FAILED: %s" % e, file=sys.stderr)
        return 1
    finally:
        if own_guest:
            subprocess.run([os.path.join(_common.REPO, "tests", "guest", "stop.sh")], env=start_env, check=False)
    with open(out, "w") as f:
        f.write(text)
    print(text)
    log("report in %s" % os.path.relpath(out, _common.REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())

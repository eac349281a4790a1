"""Shared helpers of the benchmarks: the import path, child processes, statistics.

Importing this module makes the checkout importable as ``ansible_collections.lvdiff.thin``
(the same symlink under tests/output that tests/unit/conftest.py makes) and puts
tests/support on sys.path (the thin-pool generator).
"""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ROOT = os.path.join(REPO, "tests", "output", "collections")
LINK = os.path.join(ROOT, "ansible_collections", "lvdiff", "thin")
OUTPUT = os.path.join(REPO, "tests", "output", "bench")
SUPPORT = os.path.join(REPO, "tests", "support")

if not os.path.exists(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    try:
        os.symlink(REPO, LINK)
    except FileExistsError:  # made meanwhile by a test run
        pass
for _p in (ROOT, SUPPORT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

MiB = 1 << 20
GiB = 1 << 30


def find_tool(name):
    path = shutil.which(name, path=os.environ.get("PATH", os.defpath) + ":/usr/sbin:/sbin")
    if not path:
        raise RuntimeError("%s not found (install thin-provisioning-tools)" % name)
    return path


# --- measuring ---------------------------------------------------------------------


def vm_hwm_kib():
    """Peak resident set size of this process (VmHWM), in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_child(op, **args):
    """Run one measured operation of child.py in a fresh Python process.

    The child times the operation itself (interpreter start-up and imports are not
    part of it) and reports its own peak RSS and that of its children (the thin tool).
    """
    cmd = [sys.executable, os.path.join(HERE, "child.py"), op, json.dumps(args)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    if p.returncode != 0:
        raise RuntimeError("benchmark child %s failed (rc=%d):\n%s" % (op, p.returncode, p.stderr[-4000:]))
    return json.loads(p.stdout.strip().splitlines()[-1])


LAST_PIPELINE_CPU = [0.0]  # CPU seconds (user + system) of the last run_pipeline's processes


def run_pipeline(cmds, stdout=subprocess.DEVNULL):
    """Run a shell-free pipeline cmd1 | cmd2 | ...; return its wall time in seconds (its CPU time
    goes to LAST_PIPELINE_CPU)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    procs = []
    prev = None
    for i, cmd in enumerate(cmds):
        last = i == len(cmds) - 1
        p = subprocess.Popen(cmd, stdin=prev if prev is not None else subprocess.DEVNULL,
                             stdout=stdout if last else subprocess.PIPE)
        if prev is not None:
            prev.close()
        prev = p.stdout
        procs.append(p)
    for p in procs:
        p.wait()
    elapsed = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_PIPELINE_CPU[0] = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    for p, cmd in zip(procs, cmds):
        if p.returncode != 0:
            raise RuntimeError("%s failed (rc=%d)" % (" ".join(cmd), p.returncode))
    return elapsed


def tool_peak_rss(cmd):
    """Peak RSS (KiB) of cmd's own process, output to /dev/null, or None without GNU time.

    rusage from our own wait4 is no good: a process forked (vfork) from Python keeps the
    parent's high-water mark across exec. GNU time is small and forks the tool itself.
    """
    gnu_time = shutil.which("time", path="/usr/bin:/bin")
    if not gnu_time:
        return None
    with tempfile.NamedTemporaryFile("r") as f:
        subprocess.run([gnu_time, "-q", "-f", "%M", "-o", f.name] + cmd, stdout=subprocess.DEVNULL, check=True)
        return int(f.read().split()[-1])


SETTLE = 0.3  # seconds; run.py --smoke lowers it


def drop_writeback():
    """Write dirty pages out before a timed run, so no run pays for an earlier one's
    writeback; then let the file system settle (freed extents are discarded after the
    journal commits, which slowed the next writer down by seconds here)."""
    os.sync()
    time.sleep(SETTLE)
    os.sync()


def preread(path):
    """Bring the data segments of a (sparse) file into the page cache."""
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
            while off < end:
                n = len(os.pread(fd, min(8 * MiB, end - off), off))
                if not n:
                    break
                off += n
    finally:
        os.close(fd)


def remove(*paths):
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


def median(xs):
    return statistics.median(xs) if xs else float("nan")


# --- reporting ---------------------------------------------------------------------


def fmt_s(x):
    return "%.3f" % x if x < 10 else "%.2f" % x


def fmt_mib(kib):
    return "-" if kib is None else "%.1f" % (kib / 1024)


def machine():
    """What the results were measured on."""
    def first(path, key):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "?"

    mem_kib = first("/proc/meminfo", "MemTotal").split()[0]
    try:
        tools = subprocess.run([find_tool("thin_delta"), "--version"], capture_output=True,
                               text=True, check=False).stdout.strip()
    except (OSError, RuntimeError):
        tools = "?"
    try:
        import lxml.etree as et
        lxml_v = "%s (libxml2 %s)" % (et.__version__, ".".join(map(str, et.LIBXML_VERSION)))
    except ImportError:
        lxml_v = "?"
    os_name = "?"
    try:
        with open("/etc/os-release") as f:
            m = re.search(r'^PRETTY_NAME="?([^"\n]*)', f.read(), re.M)
            os_name = m.group(1) if m else "?"
    except OSError:
        pass
    try:
        zstd_cli = subprocess.run(["zstd", "--version"], capture_output=True, text=True,
                                  check=False).stdout.strip().split(" v", 1)[-1].split(",")[0]
    except OSError:
        zstd_cli = "?"
    try:
        import zstandard
        import cryptography
        from cryptography.hazmat.backends.openssl import backend
        fmt2 = "zstandard %s (libzstd %s), cryptography %s (%s)" % (
            zstandard.__version__, ".".join(map(str, zstandard.ZSTD_VERSION)), cryptography.__version__,
            backend.openssl_version_text())
    except ImportError:
        fmt2 = "?"
    fs = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", OUTPUT if os.path.exists(OUTPUT) else REPO],
                        capture_output=True, text=True, check=False).stdout.strip() or "?"
    return [
        ("CPUs (nproc)", str(os.cpu_count())),
        ("CPU model", first("/proc/cpuinfo", "model name")),
        ("memory", "%.1f GiB" % (int(mem_kib) / (1 << 20)) if mem_kib.isdigit() else "?"),
        ("kernel", platform.release()),
        ("OS", os_name),
        ("Python", platform.python_version()),
        ("lxml", lxml_v),
        ("thin-provisioning-tools", tools),
        ("zstd (CLI)", zstd_cli),
        ("format 2 libraries", fmt2),
        ("file system of tests/output", fs),
    ]

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: send
short_description: Snapshot thin volumes, write their diffs and send them to another host, many volumes at once
version_added: 0.1.0
description:
  - The source side of the role C(lvdiff.thin.replicate), for all of a host's volumes in one module run.
  - For each volume, runs its O(volumes[].steps) in order. A step takes a read-only thin snapshot
    (O(volumes[].steps[].create)), writes the diff of that snapshot against O(volumes[].steps[].base) (or a full
    image) to O(volumes[].steps[].dest) exactly as M(lvdiff.thin.lvdiff) does, and sends it to
    O(volumes[].steps[].remote) on O(host) exactly as M(lvdiff.thin.transfer) does (resumable, verified by
    SHA-1 on the target).
  - Every part is idempotent. An existing snapshot with that name and all of O(volumes[].snapshot_tags) is
    kept; an existing complete diff of the same read-only snapshots is reused; a file the target already holds
    is not sent again.
  - A failed step skips the later steps of its volume; the other volumes go on. A volume's failure is reported
    in RV(volumes[].failed), the module itself does not fail for it.
  - The run goes in phases, each for all volumes at once, so that a host's many volumes cost few LVM commands
    - the new snapshots (each created active), one C(lvs), the volumes the diffs read activated with one
    C(lvchange) per volume group, the diffs of each thin pool planned from one metadata snapshot (released
    before any file is written), then the diffs written and sent, O(jobs) volumes at once, and what the run
    activated deactivated with one C(lvchange) per volume group. A new snapshot that follows a step still being
    resumed is made in its turn, once that step is sent.
  - The directory of a O(volumes[].steps[].dest) is created with mode V(0700) when missing.
author:
  - lvdiff.thin contributors (!UNKNOWN)
attributes:
  check_mode:
    details:
      - Creates, writes and sends nothing. Reports the snapshots it would create; for snapshots that exist, the
        diff sizes and counts a run would write (as M(lvdiff.thin.lvdiff) in check mode), and for a diff that
        is already complete, what the target still needs (RV(volumes[].steps[].bytes_to_send)).
extends_documentation_fragment:
  - lvdiff.thin.attributes
  - lvdiff.thin.ssh
  - lvdiff.thin.attributes.THIN_TOOLS
  - lvdiff.thin.progress
  - lvdiff.thin.encryption
  - lvdiff.thin.encryption.COMPRESSION
requirements:
  - C(paramiko) on the source host, when a step has O(volumes[].steps[].remote).
options:
  volumes:
    description: The volumes and their steps.
    type: list
    elements: dict
    required: true
    suboptions:
      vg:
        description: Volume group of the volume.
        type: str
        required: true
      lv:
        description: The thin volume (the origin of the snapshots that steps create).
        type: str
        required: true
      snapshot_tags:
        description: LVM tags of the snapshots that steps create (and that an existing snapshot must carry).
        type: list
        elements: str
        default: []
      steps:
        description: What to do for this volume, in order.
        type: list
        elements: dict
        default: []
        suboptions:
          snapshot:
            description: Name of the snapshot to diff (in O(volumes[].vg)).
            type: str
            required: true
          create:
            description:
              - Take a read-only thin snapshot of O(volumes[].lv) named O(volumes[].steps[].snapshot) with
                O(volumes[].snapshot_tags) first, unless one with that name and those tags exists.
            type: bool
            default: false
          base:
            description: The snapshot to diff against, in the same pool; omit it for a full image.
            type: str
          dest:
            description: Path of the diff file on this host.
            type: path
            required: true
          remote:
            description:
              - Path of the diff file on O(host). Omit it to only write the diff (relay mode, where
                M(lvdiff.thin.transfer) with O(lvdiff.thin.transfer#module:files) sends it).
            type: str
          pairs:
            description: User metadata stored in the diff's header (as O(lvdiff.thin.lvdiff#module:pairs)).
            type: dict
            default: {}
          created:
            description:
              - The creation time the diff's header records, as V(YYYY-mm-ddTHH:MM:SSZ) (UTC). Omit it for the
                time the diff is written.
              - The role C(lvdiff.thin.backup) gives the time of the run that took the snapshot, which also names
                the backup file.
            type: str
  checksum_level:
    description: How much of the base the receiver verifies, as O(lvdiff.thin.lvdiff#module:checksum_level).
    type: int
    default: 2
    choices: [0, 1, 2, 3]
  keep_diffs:
    description:
      - Keep each diff file after it was sent. V(false) removes it once the target has it.
      - Diffs without O(volumes[].steps[].remote) are always kept.
    type: bool
    default: true
  host:
    description: Address of the target host, as reachable from this host. Required when a step has a remote.
    type: str
  user:
    description: SSH user on the target host.
    type: str
    default: root
  jobs:
    description: How many volumes are worked on at once (threads, each with its own SSH connection).
    type: int
    default: 2
  progress_files:
    description:
      - Write each step's progress (see the notes) to C(<dest>.progress), next to its O(volumes[].steps[].dest),
        while the step runs, with phase C(checking base) and C(writing) (as M(lvdiff.thin.lvdiff)'s), then
        C(sending) (as M(lvdiff.thin.transfer)'s). The O(jobs) volumes worked on at once each have their own.
      - V(false) writes none.
    type: bool
    default: true
notes:
  - A SIGTERM stops the run after each volume's current diff; a transfer under way stops at once and keeps
    what arrived for the next run. Volumes not started then fail with a message saying so.
seealso:
  - module: lvdiff.thin.probe
  - module: lvdiff.thin.lvdiff
  - module: lvdiff.thin.transfer
'''

EXAMPLES = r'''
- name: Snapshot two volumes, write their diffs and send them to the backup host
  lvdiff.thin.send:
    host: backup.example.com
    key_file: /root/.ssh/id_ed25519
    volumes:
      - vg: vg0
        lv: data
        snapshot_tags: [lvdiff_rep_snap, "lvdiff_rep_of:Zr3XyL-nZ1d-0Hd2-Yi4n-kHo1-Ro9v-SPZ2kC"]
        steps:
          - snapshot: data-rep-20260102T030000Z
            create: true
            base: data-rep-20260101T030000Z
            dest: /var/backups/lvdiff/data-rep-20260102T030000Z.lvdiff
            remote: /var/backups/incoming/web1/data-rep-20260102T030000Z.lvdiff
      - vg: vg0
        lv: www
        snapshot_tags: [lvdiff_rep_snap, "lvdiff_rep_of:0Hd2Yi-4nkH-o1Ro-9vSP-Z2kC-Zr3X-yLnZ1d"]
        steps:
          - snapshot: www-rep-20260102T030000Z
            create: true
            dest: /var/backups/lvdiff/www-rep-20260102T030000Z.lvdiff
            remote: /var/backups/incoming/web1/www-rep-20260102T030000Z.lvdiff
  register: sent

- name: Volumes that failed
  ansible.builtin.debug:
    msg: "{{ sent.volumes | selectattr('failed') | map(attribute='msg') | list }}"
'''

RETURN = r'''
lvs:
  description:
    - The rows of C(lvs) after the run, per volume group, as RV(lvdiff.thin.probe#module:lvs) (the new snapshots
      included). Read again only when the run created or activated volumes; otherwise the run's first C(lvs).
  returned: always
  type: dict
volumes:
  description: One result per item of O(volumes), in the same order (the steps done, or why not).
  returned: always
  type: list
  elements: dict
  contains:
    vg:
      description: O(volumes[].vg).
      type: str
      returned: always
    lv:
      description: O(volumes[].lv).
      type: str
      returned: always
    changed:
      description: Whether a step of this volume changed something (a snapshot, a diff file, a transfer).
      type: bool
      returned: always
    failed:
      description: Whether a step of this volume failed (its later steps were skipped).
      type: bool
      returned: always
    msg:
      description:
        - Why the volume failed.
        - The volume's result also holds the details of that failure, as the failing module would return them,
          for example C(resumed_from), C(bytes_sent) and C(dest_file) of an interrupted transfer, or C(rc) and
          C(stderr) of a failed command.
      type: str
      returned: failure
    steps:
      description: The steps done, in order; a failed step is not listed.
      type: list
      elements: dict
      returned: always
      contains:
        snapshot:
          description: O(volumes[].steps[].snapshot).
          type: str
        created:
          description: Whether the snapshot was created (would be, in check mode).
          type: bool
        base:
          description: O(volumes[].steps[].base).
          type: str
        dest:
          description: O(volumes[].steps[].dest).
          type: str
        remote:
          description: O(volumes[].steps[].remote).
          type: str
        changed:
          description: Whether this step changed something.
          type: bool
        size:
          description: Size of the diff file (the estimate in check mode); null when not known in check mode.
          type: int
        sha1:
          description: SHA-1 of the diff file; null in check mode unless the diff was already there.
          type: str
        data_chunks:
          description: Chunks whose data the diff carries (RV(lvdiff.thin.lvdiff#module:data_chunks)).
          type: int
        discard_chunks:
          description: Chunks the diff discards (RV(lvdiff.thin.lvdiff#module:discard_chunks)).
          type: int
        checks:
          description: Base-check records of the diff (RV(lvdiff.thin.lvdiff#module:checks)).
          type: int
        compression:
          description: The diff's compression, V(zstd) or V(none) (RV(lvdiff.thin.lvdiff#module:compression)).
          type: str
        encryption:
          description: The diff's encryption, V(aes-256-gcm) or V(none) (RV(lvdiff.thin.lvdiff#module:encryption)).
          type: str
        key_id:
          description: The key id in the diff's header; null when not encrypted (RV(lvdiff.thin.lvdiff#module:key_id)).
          type: str
        stored_data_bytes:
          description:
            - Bytes of data as stored in the diff file (RV(lvdiff.thin.lvdiff#module:stored_data_bytes)); null in
              check mode unless the diff was already there.
          type: int
        compression_ratio:
          description:
            - Volume data bytes over RV(volumes[].steps[].stored_data_bytes)
              (RV(lvdiff.thin.lvdiff#module:compression_ratio)); null when not known.
          type: float
        bytes_sent:
          description: Bytes sent to the target in this run (0 without a remote).
          type: int
        resumed_from:
          description: Bytes the target already held in its C(.part) when the transfer started.
          type: int
        bytes_to_send:
          description: In check mode, the bytes a real run would send, when that is known.
          type: int
        seconds:
          description: Wall time of the step's own work (its snapshot, writing its diff and its transfer; the
            planning of the diffs of a pool is shared).
          type: float
'''

import os
import threading
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lvdiff.thin.plugins.module_utils import _batch, _diffio, _progress, _thinmeta, _transfer
from ansible_collections.lvdiff.thin.plugins.module_utils._backup import Differ
from ansible_collections.lvdiff.thin.plugins.module_utils._command import Runner
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import (
    LvdiffError, Terminated, require_lib, run_module)
from ansible_collections.lvdiff.thin.plugins.module_utils._lvm import check_name, check_tag, rows_of

STOPPED = 'not done: the run was terminated before this volume'


class _Connections:
    """One SSH connection to the target per worker thread, made when first needed and reused by the
    steps and volumes that thread works on."""

    def __init__(self, p):
        self.p = p
        self.local = threading.local()
        self.made = []
        self.lock = threading.Lock()

    def get(self):
        endpoint = getattr(self.local, 'endpoint', None)
        if endpoint is None:
            p = self.p
            endpoint = _transfer.SSHEndpoint(p['host'], p['port'], p['user'], p['key_file'],
                                             p['host_key_checking'], p['timeout'], p['io_timeout'])
            self.local.endpoint = endpoint
            with self.lock:
                self.made.append(endpoint)
        return endpoint

    def drop(self):
        """Forget this thread's connection after a failed transfer: the next one starts afresh."""
        endpoint = getattr(self.local, 'endpoint', None)
        self.local.endpoint = None
        if endpoint is not None:
            endpoint.close()

    def close(self):
        for endpoint in self.made:
            endpoint.close()


class _Source(_transfer.LocalSource):
    """A local diff file whose sending stops when the run is terminated (the target keeps its .part)."""

    def __init__(self, path, stop):
        super().__init__(path)
        self.stop = stop

    def send(self, session, offset, count, progress):
        def note(n):
            if self.stop.is_set():
                raise Terminated('terminated while sending %s; the target keeps what arrived' % self.path)
            progress(n)
        return super().send(session, offset, count, note)


class _Volume:
    """One item's run: the results of its steps in order, and the first failure, which ends them."""

    def __init__(self, item):
        self.item = item
        self.steps = item['steps']
        self.done = [None] * len(self.steps)  # each step's result, once its part of the run is done
        self.diffs = {}                       # step index -> its prepared Diff
        self.end = len(self.steps)            # steps from here on are not done
        self.error = None

    def fail(self, i, error):
        if i < self.end:
            self.end, self.error = i, error
        self.close(i)

    def close(self, first=0):
        """The plans of steps first and after closed (their diffs will not be written)."""
        for j in [j for j in self.diffs if j >= first]:
            self.diffs.pop(j).close()

    def batched(self, i):
        """Whether step i's snapshot is made with the others: a new snapshot after a step still being
        resumed is made in its turn, once the step before it is sent (as one step after another)."""
        return i == 0 or not self.steps[i]['create']


class Sender:
    """The run in phases, each for all volumes at once: the new snapshots (created active), one lvs,
    the volumes the diffs read activated with one lvchange per VG, every plan of a pool from one
    metadata snapshot (released before any file is written), then the diffs written and sent in jobs
    threads, and what the run activated deactivated with one lvchange per VG."""

    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.check = module.check_mode
        self.runner = Runner(module)
        self.differ = Differ(self.runner, self.check, module.add_cleanup_file)
        self.lvm = self.differ.lvm
        self.connections = _Connections(self.p)
        self.stop = threading.Event()
        self.activated = []  # (vg, name): made active by this run, inactive again at its end

    def run(self):
        vols = [_Volume(item) for item in self.p['volumes']]
        vgs = []
        for v in vols:
            try:
                vgs.append(check_name('volume group', v.item['vg']))
            except LvdiffError as e:
                v.fail(0, e)  # that volume fails alone
        self.report = self.lvm.report(vgs)
        changed_lvm = False
        try:
            with _batch.stop_on_signal(self.stop):
                try:
                    if self.each(vols, self.snapshots) and not self.check:
                        self.report = self.lvm.report(vgs)  # the new snapshots' UUIDs and thin ids
                        changed_lvm = True
                    self.each(vols, self.prepare)
                    changed_lvm = self.activate(vols) or changed_lvm
                    self.plan(vols)
                    results = _batch.each(vols, self.send, self.p['jobs'])
                    changed_lvm = changed_lvm or any(r.get('created_later') for r in results)
                finally:
                    for v in vols:
                        v.close()  # plans that a failure left unwritten
                    self.deactivate()
        finally:
            self.connections.close()
        volumes = []
        for v, r in zip(vols, results):
            if r.get('failed'):  # send() itself failed (a bug): the whole volume with it
                v.fail(0, LvdiffError(r['msg']))
            done = [d for d in v.done[:v.end] if d is not None]
            result = {'vg': v.item['vg'], 'lv': v.item['lv'], 'steps': done, 'failed': v.error is not None,
                      'changed': any(d['changed'] for d in done)}
            if v.error is not None:
                # with the error's details: an interrupted transfer's resumed_from tells what the target kept
                result.update((k, x) for k, x in _batch.failure(v.error).items() if k not in result)
            volumes.append(result)
        if changed_lvm:
            self.report = self.lvm.report(vgs)
        return {'changed': any(v['changed'] for v in volumes), 'volumes': volumes, 'lvs': rows_of(self.report)}

    def each(self, vols, work):
        """work(v, i, step) for the steps of each volume in order, in this thread (LVM takes one command at
        a time anyway), up to a failure or a step work returns None for; whether any returned True."""
        any_true = False
        for v in vols:
            for i in range(v.end):
                if self.stop.is_set():
                    v.fail(i, LvdiffError(STOPPED))
                    break
                try:
                    r = work(v, i, v.steps[i])
                except Exception as e:  # this volume's failure; the others go on
                    v.fail(i, e)
                    break
                if r is None:
                    break
                any_true = any_true or r
        return any_true

    # -- the phases --

    def snapshots(self, v, i, step):
        """Phase 1: the step's snapshot, created active (a diff reads it next)."""
        if not v.batched(i):
            return None
        v.done[i] = done = _step_result(step)
        if step['create']:
            start = time.monotonic()
            done['created'] = self.snapshot(v.item, step['snapshot'], self.lvs_of(v.item), True)
            if done['created'] and not self.check:
                self.activated.append((v.item['vg'], step['snapshot']))
            done['seconds'] += time.monotonic() - start
        return done['created']

    def prepare(self, v, i, step):
        """Phase 2: the step's diff checked and, unless dest already holds it, to be planned."""
        if not v.batched(i):
            return None
        lvs = self.lvs_of(v.item)
        if step['snapshot'] in lvs and self.spool_dir(step):  # in check mode either may be missing
            v.diffs[i] = self.differ.prepare(self.diff_options(v.item, step), lvs)
        return False

    def activate(self, vols):
        """What the diffs to write read, activated: one lvchange per VG (one per volume if that fails)."""
        if self.check:
            return False
        wanted = {}
        for v in vols:
            for i, job in sorted(v.diffs.items()):
                for lv in () if job.done else (job.lv, job.base):
                    if lv is not None and not lv.active and (lv.vg, lv.name) not in self.activated:
                        wanted.setdefault(lv.vg, {}).setdefault(lv.name, []).append((v, i))
        for vg, names in sorted(wanted.items()):
            try:
                self.lvm.set_active(vg, sorted(names), True)
                self.activated += [(vg, name) for name in sorted(names)]
            except LvdiffError:
                for name, users in sorted(names.items()):
                    try:
                        self.lvm.set_active(vg, [name], True)
                        self.activated.append((vg, name))
                    except LvdiffError as e:
                        for v, i in users:
                            v.fail(i, e)
        return bool(wanted)

    def plan(self, vols):
        """Every diff to write planned; the diffs of one pool from one metadata snapshot."""
        pools = {}
        for v in vols:
            for i, job in sorted(v.diffs.items()):
                if not job.done:
                    pools.setdefault((job.lv.vg, job.lv.pool), []).append((v, i, job))
        for (vg, pool), jobs in sorted(pools.items(), key=lambda kv: kv[0]):
            errors = [None] * len(jobs)

            def plan(n):
                try:
                    self.differ.plan(jobs[n][2], meta.tmeta)
                except Exception as e:  # that diff's failure (kept whole, with its details)
                    errors[n] = e

            try:
                if self.stop.is_set():
                    raise LvdiffError(STOPPED)
                with _thinmeta.MetadataSnapshot(self.runner, vg, pool) as meta:
                    _batch.each(range(len(jobs)), lambda n: plan(n) or {}, self.p['jobs'])
            except Exception as e:  # reserving or releasing failed, or a signal: every diff of the pool
                errors = [e] * len(jobs)
            for (v, i, job), error in zip(jobs, errors):
                if error is not None:
                    v.fail(i, error)

    def send(self, v):
        """Phase 4, in a worker thread: each step's diff written and sent, in order."""
        created_later = False
        for i in range(len(v.steps)):
            if i >= v.end:
                break
            if self.stop.is_set():
                v.fail(i, LvdiffError(STOPPED))
                break
            try:
                if v.batched(i):
                    self.finish_step(v, i)
                else:
                    created_later = self.step_alone(v, i) or created_later
            except Exception as e:  # noqa: B902 this volume's failure, with what its steps did before
                v.fail(i, e)
                break
        return {'created_later': created_later}

    def progress(self, step):
        """The progress file of step: writing its diff, then sending it."""
        enabled = self.p['progress_files'] and not self.check
        return _progress.Progress(_progress.path_of(None, step['dest']) if enabled else None, 'writing', None)

    def finish_step(self, v, i):
        start = time.monotonic()
        step, done, job = v.steps[i], v.done[i], v.diffs.pop(i, None)
        with self.progress(step) as progress:
            if job is not None:
                _record_diff(done, job.result if job.done else self.differ.write(job, progress))
            else:
                done['changed'] = True  # check mode: the snapshot or the directory is still to be made
            self.transfer_step(step, done, start, progress)

    def step_alone(self, v, i):
        """A new snapshot after a resumed step, made now that the step before it is sent: lvdiff's whole
        way (its own metadata snapshot and activation). Whether the snapshot was created."""
        item, step = v.item, v.steps[i]
        vg = item['vg']
        lvs = self.lvm.lvs(vg) if not self.check else self.report[vg]
        done = v.done[i] = _step_result(step)
        start = time.monotonic()
        done['created'] = self.snapshot(item, step['snapshot'], lvs)
        if done['created'] and not self.check:
            lvs = self.lvm.lvs(vg)
        with self.progress(step) as progress:
            if step['snapshot'] in lvs and self.spool_dir(step):
                _record_diff(done, self.differ.diff(self.diff_options(item, step), lvs, progress))
            else:
                done['changed'] = True
            self.transfer_step(step, done, start, progress)
        return done['created'] and not self.check

    def transfer_step(self, step, done, start, progress):
        if step['remote'] and done['sha1'] is not None:
            sent = self.transfer(step, done['sha1'], progress)
            done.update((k, sent[k]) for k in ('bytes_sent', 'resumed_from'))
            if 'bytes_to_send' in sent:
                done['bytes_to_send'] = sent['bytes_to_send']
            done['changed'] = done['changed'] or sent['changed']
            if not self.p['keep_diffs'] and not self.check:
                _remove_own_file(step['dest'])
        done['changed'] = done['changed'] or done['created']
        done['seconds'] = round(done['seconds'] + time.monotonic() - start, 3)

    def deactivate(self):
        """What this run activated (and the snapshots it created), inactive again: one lvchange per VG.
        A failure here leaves volumes active, nothing worse: it is a warning."""
        by_vg = {}
        for vg, name in self.activated:
            by_vg.setdefault(vg, []).append(name)
        self.activated = []
        for msg in self.lvm.deactivate_all(by_vg):
            self.module.warn(msg)

    # -- one step's parts --

    def lvs_of(self, item):
        """{name: LV} of item's VG, as the run last read it."""
        if item['vg'] not in self.report:
            raise LvdiffError('volume group %s does not exist on this host' % item['vg'])
        return self.report[item['vg']]

    def spool_dir(self, step):
        """Whether the directory of step's dest is there, made (mode 0700) unless in check mode."""
        directory = os.path.dirname(os.path.abspath(step['dest']))
        if not os.path.isdir(directory) and not self.check:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        return os.path.isdir(directory)

    def diff_options(self, item, step):
        options = {'vg': item['vg'], 'lv': step['snapshot'], 'base': step['base'], 'dest': step['dest'],
                   'pairs': step['pairs'], 'checksum_level': self.p['checksum_level'], 'format': 'lvdiff',
                   'force': False, 'created': step['created']}
        options.update((k, self.p[k]) for k in _SEALING_OPTIONS)
        return options

    def snapshot(self, item, name, lvs, active=False):
        """Whether the snapshot name of item's volume is to be made (and, unless in check mode, was made)."""
        vg, tags = item['vg'], [check_tag(t) for t in item['snapshot_tags']]
        have = lvs.get(check_name('snapshot', name))
        if have is not None:
            missing = [t for t in tags if t not in have.tags]
            if missing or not have.is_thin:
                raise LvdiffError('%s/%s exists but is not a thin snapshot with the tags %s (missing: %s); '
                                  'it was left alone' % (vg, name, ', '.join(tags), ', '.join(missing) or 'none'))
            return False
        if item['lv'] not in lvs:
            raise LvdiffError('volume %s/%s does not exist' % (vg, item['lv']))
        if not self.check:
            self.lvm.snapshot(vg, item['lv'], name, tags, read_only=True, active=active)
        return True

    def transfer(self, step, sha1, progress):
        try:
            return _transfer.transfer(_Source(step['dest'], self.stop), self.connections.get(), step['remote'],
                                      sha1=sha1, check=self.check, progress=progress)
        except BaseException:
            self.connections.drop()
            raise


def _step_result(step):
    """A step's result before its work: nothing created, written or sent yet."""
    return {'snapshot': step['snapshot'], 'base': step['base'], 'dest': step['dest'], 'remote': step['remote'],
            'created': False, 'changed': False, 'size': None, 'sha1': None, 'data_chunks': None,
            'discard_chunks': None, 'checks': None, 'bytes_sent': 0, 'resumed_from': 0, 'seconds': 0.0,
            'compression': None, 'encryption': None, 'key_id': None, 'stored_data_bytes': None,
            'compression_ratio': None}


def _record_diff(done, diff):
    """A step's result gets its diff's numbers (lvdiff's result)."""
    done.update((k, diff.get(k)) for k in ('size', 'sha1', 'data_chunks', 'discard_chunks', 'checks', 'compression',
                                           'encryption', 'key_id', 'stored_data_bytes', 'compression_ratio'))
    done['changed'] = diff['changed']


def _remove_own_file(path):
    """Remove path if it is still our regular file (never what someone put there meanwhile)."""
    if _diffio.owned_file(path) is not None:
        os.unlink(path)


# The options of compression and encryption, the same for every diff of the run.
_SEALING_OPTIONS = tuple(_diffio.COMPRESSION_ARGS) + tuple(_diffio.ENCRYPTION_ARGS)


def run(module):
    _diffio.writer_options(module.params)  # refused (a library, the key file) before any snapshot is taken
    return Sender(module).run()


def main():
    module = AnsibleModule(
        argument_spec=dict(
            volumes=dict(type='list', elements='dict', required=True, options=dict(
                vg=dict(type='str', required=True),
                lv=dict(type='str', required=True),
                snapshot_tags=dict(type='list', elements='str', default=[]),
                steps=dict(type='list', elements='dict', default=[], options=dict(
                    snapshot=dict(type='str', required=True),
                    create=dict(type='bool', default=False),
                    base=dict(type='str'),
                    dest=dict(type='path', required=True),
                    remote=dict(type='str'),
                    pairs=dict(type='dict', default={}),
                    created=dict(type='str'),
                )),
            )),
            checksum_level=dict(type='int', default=2, choices=[0, 1, 2, 3]),
            keep_diffs=dict(type='bool', default=True),
            host=dict(type='str'),
            port=dict(type='int', default=22),
            user=dict(type='str', default='root'),
            key_file=dict(type='path'),
            host_key_checking=dict(type='bool', default=True),
            timeout=dict(type='int', default=30),
            io_timeout=dict(type='int', default=600),
            jobs=dict(type='int', default=2),
            progress_files=dict(type='bool', default=True),
            **dict(_diffio.COMPRESSION_ARGS, **_diffio.ENCRYPTION_ARGS)
        ),
        mutually_exclusive=_diffio.ENCRYPTION_EXCLUSIVE,
        supports_check_mode=True,
    )
    require_lib(module, 'lxml', _thinmeta.HAS_LXML, _thinmeta.LXML_IMPORT_ERROR)
    if any(s['remote'] for v in module.params['volumes'] for s in v['steps']):
        require_lib(module, 'paramiko', _transfer.HAS_PARAMIKO, _transfer.PARAMIKO_IMPORT_ERROR)
        if not module.params['host']:
            module.fail_json(msg='host is required when a step has a remote')
    if module.params['jobs'] < 1:
        module.fail_json(msg='jobs must be at least 1, got %d' % module.params['jobs'])
    run_module(module, run)


if __name__ == '__main__':
    main()

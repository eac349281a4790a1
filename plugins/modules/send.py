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
  - O(jobs) volumes are worked on at once. Diffs of volumes in the same thin pool take turns (a pool has one
    metadata snapshot); their transfers overlap.
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
volumes:
  description: One result per item of O(volumes), in the same order.
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
          description: Wall time of the step (snapshot, diff and transfer).
          type: float
'''

import os
import threading
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lvdiff.thin.plugins.module_utils import _batch, _diffio, _thinmeta, _transfer
from ansible_collections.lvdiff.thin.plugins.module_utils._backup import Differ
from ansible_collections.lvdiff.thin.plugins.module_utils._command import Runner
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import (
    LvdiffError, Terminated, require_lib, run_module)
from ansible_collections.lvdiff.thin.plugins.module_utils._lvm import check_name, check_tag

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


class Sender:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.check = module.check_mode
        self.runner = Runner(module)
        self.differ = Differ(self.runner, self.check, module.add_cleanup_file)
        self.lvm = self.differ.lvm
        self.connections = _Connections(self.p)
        self.stop = threading.Event()

    def run(self):
        items = self.p['volumes']
        vgs = []
        for item in items:
            try:
                vgs.append(check_name('volume group', item['vg']))
            except LvdiffError:
                pass  # that volume fails alone
        self.report = self.lvm.report(vgs)
        try:
            with _batch.stop_on_signal(self.stop):
                results = _batch.each(items, self.volume, self.p['jobs'])
        finally:
            self.connections.close()
        volumes = []
        for item, result in zip(items, results):
            # each() says failed=False for what volume() returned; a volume failed when it has a message
            result = dict({'steps': [], 'changed': False}, **result)
            volumes.append(dict(result, vg=item['vg'], lv=item['lv'], failed='msg' in result))
        return {'changed': any(v['changed'] for v in volumes), 'volumes': volumes}

    def volume(self, item):
        """Every step of one volume, in order; the first failure ends them and is the volume's result."""
        result = {'changed': False, 'steps': []}
        try:
            if self.stop.is_set():
                raise LvdiffError(STOPPED)
            vg = check_name('volume group', item['vg'])
            if vg not in self.report:
                raise LvdiffError('volume group %s does not exist on this host' % vg)
            lvs = self.report[vg]
            for step in item['steps']:
                if self.stop.is_set():
                    raise LvdiffError(STOPPED)
                done = self.step(item, step, lvs)
                result['steps'].append(done)
                result['changed'] = result['changed'] or done['changed']
                lvs = done.pop('lvs')
        except Exception as e:  # this volume's failure (with the steps done before it); the others go on
            # with the error's details: an interrupted transfer's resumed_from tells what the target kept
            result.update((k, v) for k, v in _batch.failure(e).items() if k not in ('failed', 'steps', 'changed'))
        return result

    def step(self, item, step, lvs):
        start = time.monotonic()
        vg, name = item['vg'], step['snapshot']
        done = {'snapshot': name, 'base': step['base'], 'dest': step['dest'], 'remote': step['remote'],
                'created': False, 'changed': False, 'size': None, 'sha1': None, 'data_chunks': None,
                'discard_chunks': None, 'checks': None, 'bytes_sent': 0, 'resumed_from': 0, 'lvs': lvs}
        if step['create']:
            done['created'] = self.snapshot(item, name, lvs)
            if done['created'] and not self.check:
                done['lvs'] = lvs = self.lvm.lvs(vg)  # the new snapshot's UUID and thin id
        directory = os.path.dirname(os.path.abspath(step['dest']))
        if not os.path.isdir(directory) and not self.check:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        if name in lvs and os.path.isdir(directory):  # in check mode, a snapshot or directory may be missing
            diff = self.differ.diff({'vg': vg, 'lv': name, 'base': step['base'], 'dest': step['dest'],
                                     'pairs': step['pairs'], 'checksum_level': self.p['checksum_level'],
                                     'format': 'lvdiff', 'force': False}, lvs)
            done.update((k, diff.get(k)) for k in ('size', 'sha1', 'data_chunks', 'discard_chunks', 'checks'))
            done['changed'] = diff['changed']
        else:
            done['changed'] = True
        if step['remote'] and done['sha1'] is not None:
            sent = self.transfer(step, done['sha1'])
            done.update((k, sent[k]) for k in ('bytes_sent', 'resumed_from'))
            if 'bytes_to_send' in sent:
                done['bytes_to_send'] = sent['bytes_to_send']
            done['changed'] = done['changed'] or sent['changed']
            if not self.p['keep_diffs'] and not self.check:
                _remove_own_file(step['dest'])
        done['changed'] = done['changed'] or done['created']
        done['seconds'] = round(time.monotonic() - start, 3)
        return done

    def snapshot(self, item, name, lvs):
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
            self.lvm.snapshot(vg, item['lv'], name, tags, read_only=True)
        return True

    def transfer(self, step, sha1):
        try:
            return _transfer.transfer(_Source(step['dest'], self.stop), self.connections.get(), step['remote'],
                                      sha1=sha1, check=self.check)
        except BaseException:
            self.connections.drop()
            raise


def _remove_own_file(path):
    """Remove path if it is still our regular file (never what someone put there meanwhile)."""
    if _diffio.owned_file(path) is not None:
        os.unlink(path)


def run(module):
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
        ),
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

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: transfer
short_description: Send a file to another host over SSH, resumably, verified by SHA-1
version_added: 0.1.0
description:
  - Streams file O(src) to path O(dest) on host O(host) over SSH (paramiko), host to host, without passing
    through the Ansible controller. Made for diff files of M(lvdiff.thin.lvdiff), works for any file.
  - The target receives into C(<dest>.part). An interrupted transfer keeps what arrived, and the next run asks
    the target how much it holds and sends only the rest. A C(.part) is resumed only when C(<dest>.part.sha1)
    names the same source SHA-1 and the C(.part) is not longer than the source; otherwise it starts from zero.
  - When all bytes are there, the target computes the SHA-1 of the whole C(.part). If it matches, the C(.part)
    is renamed to O(dest) atomically; if not, it is deleted, nothing is renamed, and the module fails.
  - Relay mode, for hosts that cannot reach each other, runs the module on the controller
    (C(delegate_to) set to C(localhost)) with O(src_host) set. It reads O(src) on that host through SSH and writes it to
    the target, streaming through the controller's memory in bounded buffers, resumable the same way.
  - The target needs a POSIX shell with C(cat), C(tee), C(wc), C(sha1sum), C(cut), C(mv), C(mkdir), C(ls), C(id)
    (coreutils or busybox), and C(flock) to refuse concurrent transfers to one O(dest) (optional).
    A relay source needs C(tail), C(wc) and C(sha1sum).
author:
  - lvdiff.thin contributors (!UNKNOWN)
attributes:
  check_mode:
    details: Asks the target what it holds and returns RV(bytes_to_send); sends and writes nothing.
extends_documentation_fragment:
  - lvdiff.thin.attributes
  - lvdiff.thin.ssh
  - lvdiff.thin.progress
requirements:
  - C(paramiko) on the host running the module (the source host, or the controller in relay mode).
options:
  src:
    description:
      - Path of the file to send, on the host running the module, or on O(src_host) in relay mode.
      - Required unless O(files) is given.
    type: str
  files:
    description:
      - Several files to send with the same connection settings, instead of O(src), O(dest) and O(sha1).
      - One SSH connection to O(host) (and one to O(src_host)) serves all of them. Each file is sent as O(src)
        would be; one that fails is reported in RV(files[].failed) and the others are still sent (after a
        failed file, the next one connects afresh). The module fails only when a host cannot be reached.
    type: list
    elements: dict
    suboptions:
      src:
        description: As O(src).
        type: str
        required: true
      dest:
        description: As O(dest).
        type: str
        required: true
      sha1:
        description: As O(sha1).
        type: str
  dest:
    description:
      - Path of the file on the target. Missing parent directories are created (mode C(0700)).
      - Required with O(src).
      - The file and its C(.part) are created with mode C(0600).
      - An existing O(dest) with other content is replaced once the new file has arrived and is verified.
      - Other users of the target must not be able to tamper with it. The module fails, writing nothing, if the
        directory of O(dest) or a directory above it is owned by another user than O(user) or root, or is
        writable by group or others without the sticky bit (like C(/tmp)); or if O(dest), C(<dest>.part) or
        C(<dest>.part.sha1) exists as a symlink, as anything but a regular file of O(user), or (the
        C(.part) files) with another hard link.
    type: str
  host:
    description: Address of the target host, as reachable from the host running the module.
    type: str
    required: true
  user:
    description: SSH user on the target host. It must be able to write O(dest) and its directory.
    type: str
    default: root
  sha1:
    description:
      - SHA-1 of O(src), when already known (for example RV(lvdiff.thin.lvdiff#module:sha1)), so that the
        source is not read twice. The target always verifies the received file against it.
      - Default is to compute it by reading O(src).
    type: str
  src_host:
    description:
      - Relay mode. O(src) is on this host, reached through SSH from the host running the module.
    type: str
  src_port:
    description:
      - SSH port of O(src_host); default 22.
      - Only with O(src_host), as O(src_user) and O(src_key_file). Given without it, the module refuses
        rather than send the file of that path on this host.
    type: int
  src_user:
    description: SSH user on O(src_host), default C(root). It must be able to read O(src).
    type: str
  src_key_file:
    description: Private key to log in to O(src_host) with; default as for O(key_file).
    type: path
  progress_file:
    description:
      - Where to write the progress of the run (see the notes), on the host running the module, with phase
        C(sending) (with O(files), C(sending N/M) for the Nth of M files), the bytes the target holds of the
        file's size.
      - Default is to write none.
    type: path
notes:
  - Idempotence. When O(dest) already holds a file of the same size and SHA-1, nothing is sent
    (RV(ignore:changed=false)).
  - Bytes in flight are protected by SSH; the final SHA-1 check also catches a C(.part) changed on the target
    between runs, and a source that changed between an interrupted run and its resume.
  - Neither end trusts the other. In relay mode, the size and SHA-1 that O(src_host) reports must be a decimal
    number and 40 hexadecimal digits, or the module fails before it runs anything on the target; every word of
    every command run on either host is quoted. Replies are bounded (4 KiB a line, 64 KiB of messages).
  - A SIGTERM stops the transfer, keeping what arrived for the next run.
seealso:
  - module: lvdiff.thin.lvdiff
  - module: lvdiff.thin.lvpatch
'''

EXAMPLES = r'''
- name: Write a diff on the source host
  lvdiff.thin.lvdiff:
    vg: vg0
    lv: data-snap-2
    base: data-snap-1
    dest: /var/backups/data-snap-2.lvdiff
  register: diff

- name: Send it from the source host straight to the backup host
  lvdiff.thin.transfer:
    src: "{{ diff.dest }}"
    sha1: "{{ diff.sha1 }}"
    dest: /var/backups/incoming/web1/data-snap-2.lvdiff
    host: backup.example.com
    key_file: /root/.ssh/id_ed25519
  register: sent

- name: The same through the controller, for hosts that cannot reach each other
  lvdiff.thin.transfer:
    src: /var/backups/data-snap-2.lvdiff
    src_host: web1.example.com
    dest: /var/backups/incoming/web1/data-snap-2.lvdiff
    host: backup.example.com
  delegate_to: localhost
  become: false

- name: Several files through the controller, over one connection to each host
  lvdiff.thin.transfer:
    files:
      - src: /var/backups/data-snap-2.lvdiff
        sha1: "{{ diff.sha1 }}"
        dest: /var/backups/incoming/web1/data-snap-2.lvdiff
      - src: /var/backups/www-snap-2.lvdiff
        dest: /var/backups/incoming/web1/www-snap-2.lvdiff
    src_host: web1.example.com
    host: backup.example.com
  delegate_to: localhost
  become: false
  register: sent_all
'''

RETURN = r'''
dest_file:
  description: Path of the file on the target (O(dest)).
  returned: with O(src)
  type: str
  sample: /var/backups/incoming/web1/data-snap-2.lvdiff
size:
  description: Size of the file in bytes.
  returned: with O(src)
  type: int
  sample: 209716342
sha1:
  description: SHA-1 of the file, verified on the target.
  returned: with O(src)
  type: str
  sample: 3f786850e387550fdab836ed7e6dc881de23001b
bytes_sent:
  description: Bytes sent in this run (0 when O(dest) was already there, and in check mode).
  returned: with O(src)
  type: int
  sample: 104858171
resumed_from:
  description: Bytes the target already held in C(<dest>.part) when this run started (0 for a fresh start).
  returned: with O(src)
  type: int
  sample: 104858171
bytes_to_send:
  description: Bytes a real run would send.
  returned: with O(src), in check mode, when the file is not there yet
  type: int
  sample: 104858171
seconds:
  description: Wall time of the module's work, connections included.
  returned: with O(src)
  type: float
  sample: 3.5
relay:
  description: Whether the file went through the host running the module (O(src_host) set).
  returned: always
  type: bool
  sample: false
files:
  description:
    - With O(files), one result per file, in the same order.
    - A file that was sent (or was already there) also has the keys of a single file's result, with the same
      meaning and under the same conditions (RV(size), RV(sha1), RV(bytes_sent), RV(resumed_from),
      RV(bytes_to_send)), and C(seconds), the wall time of this file's transfer.
  returned: with O(files)
  type: list
  elements: dict
  contains:
    src:
      description: O(files[].src).
      type: str
      returned: always
    dest_file:
      description: O(files[].dest).
      type: str
      returned: always
    changed:
      description: Whether this file was sent (would be, in check mode).
      type: bool
      returned: always
    failed:
      description: Whether this file failed.
      type: bool
      returned: always
    msg:
      description: Why this file failed.
      type: str
      returned: failure
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lvdiff.thin.plugins.module_utils import _batch, _progress, _transfer
from ansible_collections.lvdiff.thin.plugins.module_utils._errors import Terminated, require_lib, run_module


def _endpoints(p):
    """Connect to the target, and in relay mode to the source host: (target, source endpoint or None)."""
    target = _transfer.SSHEndpoint(p['host'], p['port'], p['user'], p['key_file'], p['host_key_checking'],
                                   p['timeout'], p['io_timeout'])
    if not p['src_host']:
        return target, None
    try:
        return target, _transfer.SSHEndpoint(p['src_host'], p['src_port'] or 22, p['src_user'] or 'root',
                                             p['src_key_file'], p['host_key_checking'], p['timeout'], p['io_timeout'])
    except BaseException:
        target.close()
        raise


class _Link:
    """The connections of a run, shared by all its files; after a failed file they are made afresh for the
    next one (a transfer that timed out may have left them unusable)."""

    def __init__(self, p, progress):
        self.p = p
        self.ends = None
        self.progress = progress

    def send(self, src, dest, sha1, check, phase='sending'):
        if self.ends is None:
            self.ends = _endpoints(self.p)
        target, src_end = self.ends
        source = _transfer.RemoteSource(src_end, src) if src_end else _transfer.LocalSource(src)
        try:
            return _transfer.transfer(source, target, dest, sha1=sha1, check=check, progress=self.progress,
                                      phase=phase)
        except BaseException:
            self.close()
            raise

    def close(self):
        for e in self.ends or ():
            if e is not None:
                e.close()
        self.ends = None


def run(module):
    p = module.params
    if p['sha1'] is not None:  # refused before any connection
        _transfer.check_sha1(p['sha1'])
    progress = _progress.Progress(_progress.path_of(p['progress_file'], check_mode=module.check_mode), 'sending',
                                  None)
    link = _Link(p, progress)
    try:
        if p['files'] is None:
            result = link.send(p['src'], p['dest'], p['sha1'], module.check_mode)
        else:
            link.ends = _endpoints(p)  # a host that cannot be reached fails the run, not each file
            files = []
            for n, f in enumerate(p['files'], 1):
                try:
                    done = dict(link.send(f['src'], f['dest'], f['sha1'], module.check_mode,
                                          'sending %d/%d' % (n, len(p['files']))), failed=False)
                except Terminated:
                    raise
                except Exception as e:  # this file's failure; the others are still sent
                    done = dict(_batch.failure(e), changed=False, dest_file=f['dest'])
                files.append(dict(done, src=f['src']))
            result = {'changed': any(f['changed'] for f in files), 'files': files}
    finally:
        link.close()
        progress.close()
    result['relay'] = bool(p['src_host'])
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type='str'),
            dest=dict(type='str'),
            files=dict(type='list', elements='dict', options=dict(
                src=dict(type='str', required=True),
                dest=dict(type='str', required=True),
                sha1=dict(type='str'),
            )),
            host=dict(type='str', required=True),
            port=dict(type='int', default=22),
            user=dict(type='str', default='root'),
            key_file=dict(type='path'),
            host_key_checking=dict(type='bool', default=True),
            timeout=dict(type='int', default=30),
            io_timeout=dict(type='int', default=600),
            sha1=dict(type='str'),
            src_host=dict(type='str'),
            src_port=dict(type='int'),
            src_user=dict(type='str'),
            src_key_file=dict(type='path'),
            progress_file=dict(type='path'),
        ),
        supports_check_mode=True,
        required_one_of=[('src', 'files')],
        required_together=[('src', 'dest')],
        mutually_exclusive=[('files', 'src'), ('files', 'dest'), ('files', 'sha1')],
        required_by={'src_port': 'src_host', 'src_user': 'src_host', 'src_key_file': 'src_host'},
    )
    require_lib(module, 'paramiko', _transfer.HAS_PARAMIKO, _transfer.PARAMIKO_IMPORT_ERROR)
    run_module(module, run)


if __name__ == '__main__':
    main()

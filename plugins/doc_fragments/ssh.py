# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):

    # The SSH connection options of the modules that send files (transfer, send): one wording, one default.
    DOCUMENTATION = r'''
options:
  port:
    description: SSH port of the target host.
    type: int
    default: 22
  key_file:
    description:
      - Private key to log in to the target host with.
      - Default is the user's C(~/.ssh/id_*) keys and the SSH agent, as C(ssh) would use.
    type: path
  host_key_checking:
    description:
      - Require the host key of every host the module connects to to be in C(~/.ssh/known_hosts) or
        C(/etc/ssh/ssh_known_hosts) of the user running the module.
      - V(false) accepts any host key, for test hosts only.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for an SSH connection and its authentication.
    type: int
    default: 30
  io_timeout:
    description:
      - Seconds to wait for the other end of a connection to send or accept data, once connected. After that
        the transfer fails; it resumes on the next run.
      - Some steps send nothing while they read a whole file, at disk speed (the target hashes an existing file
        of the right size; in relay mode without a known SHA-1 the source host hashes its file first). Raise
        this for files that take longer than that to read.
      - SSH keepalives are sent every 15 seconds, so that a connection that died silently fails too.
    type: int
    default: 600
'''

# -*- coding: utf-8 -*-
# Copyright: lvdiff.thin contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):

    # The key options of format 2 (docs/format.md, "Version 2"): the same names on every module that writes or
    # reads diff files, so that a role passes one set of variables. Writers encrypt with the key, readers decrypt.
    DOCUMENTATION = r'''
options:
  encrypt_key_file:
    description:
      - A key file on the managed host, to encrypt the diff files written (AES-256-GCM, every record
        authenticated, the header too) and to decrypt those read.
      - The file holds exactly 32 random bytes, or 64 hex digits and at most one newline, and must have mode
        V(0600) or stricter (a key that group or others may read is refused). Make one with
        C(umask 077; head -c 32 /dev/urandom > /etc/lvdiff/backup.key), and keep a copy off the host, since without
        it nothing encrypted with it can be restored.
      - A file's header names its key id (derived from the key, not the key), so a wrong key is told apart from
        a damaged file.
      - A module that applies diffs (M(lvdiff.thin.lvpatch), M(lvdiff.thin.restore), M(lvdiff.thin.receive)) given
        a key refuses an unencrypted file, since anyone who can write where it lies can write a plain one; the
        reports (M(lvdiff.thin.lvdiff_info), M(lvdiff.thin.repository_info)) read plain files as they are.
      - Mutually exclusive with O(encrypt_passphrase).
    type: path
  encrypt_passphrase:
    description:
      - A passphrase to encrypt with instead of a key file, and to decrypt. Each file gets its own salt and its
        key is derived with scrypt (32 MiB, about 0.1 s per file written or read), so its key id differs per
        file.
      - Mutually exclusive with O(encrypt_key_file).
    type: str
notes:
  - Encryption. A file encrypted by O(encrypt_key_file) or O(encrypt_passphrase) is format version 2. Whatever
    needs no key (framing, record checksums, order, counts, the SHA-1 of the whole file) can be verified on a
    host that holds no key; only a host with the key can read or apply it. Encryption needs the Python library
    C(cryptography) on the managed host, and only for encrypted files.
requirements:
  - C(cryptography) on the managed host, only to encrypt or decrypt (C(python3-cryptography)).
'''

    # Compression of what a writer writes: lvdiff and send.
    COMPRESSION = r'''
options:
  compress:
    description:
      - V(zstd) compresses the data of each record (one independent zstd frame per record of up to 4 MiB), so a
        diff stays streamable and a damaged record is still found and located. The file is format version 2.
      - V(none) writes no compression.
    type: str
    choices: [none, zstd]
    default: none
  compress_level:
    description:
      - The zstd level, V(1) (fastest) to V(19) (smallest). Only with O(compress=zstd).
    type: int
    default: 3
notes:
  - Compression. O(compress=zstd) needs the Python library C(zstandard) on the managed host (Debian and Ubuntu
    C(python3-zstandard); RHEL-family C(python3-zstandard) from EPEL; or C(pip install zstandard)); so does
    reading a compressed file. Compression happens before encryption.
  - Format 1 is still written when neither compression nor encryption is asked for, so older readers keep
    reading those files. A HyperLayer file (O(lvdiff.thin.lvdiff#module:format=hyperlayer)) can be neither
    compressed nor encrypted.
requirements:
  - C(zstandard) on the managed host, only to compress or to read a compressed file (C(python3-zstandard)).
'''

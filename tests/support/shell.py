"""The transfer protocol's endpoints without SSH (no sshd here): the real receiver script run by
/bin/sh on this machine, with the interface of _transfer's SSHEndpoint and ChannelSession."""

import subprocess


class ShellSession:
    """A command run by sh on this machine, with the interface of ChannelSession."""

    def __init__(self, cmd, prefix=(), env=None):
        # prefix: e.g. setpriv arguments, to run the command as another user; env: its environment
        self.proc = subprocess.Popen(list(prefix) + ['sh', '-c', cmd], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, bufsize=0, env=env, cwd='/')

    def write(self, data):
        self.proc.stdin.write(bytes(data))

    def readline(self):
        out = b''
        while not out.endswith(b'\n'):
            c = self.proc.stdout.read(1)
            if not c:
                break
            out += c
        return out.decode()

    def readinto(self, view):
        return self.proc.stdout.readinto(view)

    def close_stdin(self):
        if not self.proc.stdin.closed:
            self.proc.stdin.close()

    def finish(self):
        self.close_stdin()
        out = self.proc.stdout.read()
        err = self.proc.stderr.read()
        rc = self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()
        return rc, out.decode('utf-8', 'replace'), err.decode('utf-8', 'replace')

    def abort(self):
        self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            f.close()


class ShellEndpoint:
    label = 'local-sh'

    def __init__(self, cut_after=None, prefix=(), env=None):
        self.cut_after = cut_after  # simulate a connection lost after this many bytes of stdin
        self.prefix, self.env = prefix, env
        self.commands = []

    def session(self, cmd):
        self.commands.append(cmd)
        s = ShellSession(cmd, self.prefix, self.env)
        if self.cut_after is not None and cmd.startswith('sh -c'):
            return CutSession(s, self.cut_after)
        return s

    def run(self, cmd):
        s = self.session(cmd)
        return s.finish()


class CutSession:
    """Passes cut_after bytes, then the 'connection' breaks: stdin closes, writes fail."""

    def __init__(self, inner, cut_after):
        self.inner = inner
        self.left = cut_after

    def write(self, data):
        data = bytes(data)
        if len(data) > self.left:
            self.inner.write(data[:self.left])
            self.left = 0
            self.inner.close_stdin()
            raise BrokenPipeError('connection lost')
        self.inner.write(data)
        self.left -= len(data)

    def __getattr__(self, name):
        return getattr(self.inner, name)

"""Offline stand-in for the get-pip script that ansible-test downloads.

ansible-test bootstraps pip into each of its virtual environments by running a
get-pip script it downloads from the internet, unless one is cached at
~/.ansible/test/cache/get_pip_<version>.py. tests/lint/run.sh copies this file
there. It does what get-pip does with Python's own tools: ensurepip, then
``pip install`` of the packages ansible-test asked for (e.g. pip==24.2) from the
configured package index.
"""
import os
import subprocess
import sys


def main():
    args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
    env = dict(os.environ)
    subprocess.check_call([sys.executable, '-m', 'ensurepip', '--upgrade', '--default-pip'], env=env)
    # ensurepip sets PIP_CONFIG_FILE=/dev/null for itself; let the real install see the pip config.
    env.pop('PIP_CONFIG_FILE', None)
    subprocess.check_call([sys.executable, '-m', 'pip', 'install'] + args, env=env)


if __name__ == '__main__':
    main()

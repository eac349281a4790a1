"""Ansible's own words for arguments its argument spec refuses, so that a test states only which."""

import re


def wrong_type(name, given, wanted):
    return "argument '%s' is of type %s and we were unable to convert to %s" % (name, given, wanted)


def not_one_of(name, choices, got):
    return 'value of %s must be one of: %s, got: %s' % (name, ', '.join(choices), got)


def as_written_by_2_19(msg):
    """A refusal as ansible-core 2.19 words it: releases before it write the type as "<class 'str'>"."""
    return re.sub(r"of type <class '(\w+)'>", r'of type \1', msg)

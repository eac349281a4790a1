"""Ansible's own words for arguments its argument spec refuses, so that a test states only which."""


def wrong_type(name, given, wanted):
    return "argument '%s' is of type %s and we were unable to convert to %s" % (name, given, wanted)


def not_one_of(name, choices, got):
    return 'value of %s must be one of: %s, got: %s' % (name, ', '.join(choices), got)

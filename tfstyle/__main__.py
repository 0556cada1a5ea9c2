"""``python -m tfstyle``: the same as the ``tfstyle`` command."""

from tfstyle.cli import entry

entry()

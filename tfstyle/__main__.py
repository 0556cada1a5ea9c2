"""``python -m tfstyle``: the same as the ``tfstyle`` command."""

import sys

from tfstyle.cli import main

sys.exit(main())

"""``python -m hpcpull.admin.status``: the same as ``hpcpull status``."""

import sys

from hpcpull.admin.status.command import main

sys.exit(main())

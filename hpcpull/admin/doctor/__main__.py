"""``python -m hpcpull.admin.doctor``: the same as ``hpcpull doctor``."""

import sys

from hpcpull.admin.doctor.command import main

sys.exit(main())

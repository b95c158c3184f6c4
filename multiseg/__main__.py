"""``python -m multiseg``: the same as the ``multiseg`` console script."""

import sys

from multiseg.cli import main

sys.exit(main())

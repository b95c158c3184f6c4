"""``python -m multiseg.cli``: the command line (what torchrun launches)."""

import sys

from multiseg.cli import main

sys.exit(main())

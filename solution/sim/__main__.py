"""``python -m solution.sim``: see :mod:`solution.sim.cli`."""

import sys

from solution.sim.cli import main

sys.exit(main())

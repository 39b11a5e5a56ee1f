"""``python -m rl_adaloss.report SWEEP_DIR``."""

import sys

from rl_adaloss.report.cli import main

sys.exit(main())

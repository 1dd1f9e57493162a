"""``python -m mnist_course <command>``: the same as the ``mnist-course`` command (for a terminal
whose PATH lacks the virtual environment's bin folder)."""

import sys

from .tooling.cli import main

sys.exit(main())

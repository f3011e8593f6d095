"""``python -m ctxfusion``: the ``ctxfusion`` command (also ``torchrun -m ctxfusion run``)."""

import sys

from ctxfusion.cli import main

sys.exit(main())

"""``python -m ctxfusion.cli``: the ``ctxfusion`` command."""

import sys

from ctxfusion.cli import main

sys.exit(main())

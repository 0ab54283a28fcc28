"""Deprecated name of training.prior_correction_sweep, kept for one release (`python -m training.operating_point`
still runs the sweep, with a one-line message)."""
from __future__ import annotations

import sys

from .prior_correction_sweep import main

if __name__ == "__main__":
    print("python -m training.operating_point is deprecated, use python -m training.prior_correction_sweep",
          file=sys.stderr)
    sys.exit(main())

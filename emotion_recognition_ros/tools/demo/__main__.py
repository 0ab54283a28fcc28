"""`python -m emotion_recognition_ros.tools.demo` (what `make demo` runs)."""
import sys

from .cli import main

sys.exit(main())

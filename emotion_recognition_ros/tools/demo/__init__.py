"""`make demo` (`python -m emotion_recognition_ros.tools.demo`, `emotion_demo`): the whole workflow on one
machine, in one command, without a camera. By job: cli (options, the run in order, exit status), supervision
(the child processes: starting, stall diagnosis, stopping), watcher (the node's outputs, saved frames), summary.
"""
from .cli import build_parser, main

__all__ = ["build_parser", "main"]

"""Benchmarks of emotion_recognition_ros: `python -m benchmarks.bench` (make bench) and `benchmarks.soak`.

Not part of the installed package and not tests: they measure speed, resources and accuracy the way a user
experiences them (frames in over DDS, results out over DDS), against a node built on the PyPI `fer` package.
"""

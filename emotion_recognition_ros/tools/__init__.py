"""Offline command-line tools (demo, evaluate_bag, bag_recorder, calibration, contact sheet); never imported by
core/ or ros/."""

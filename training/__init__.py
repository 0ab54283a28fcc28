"""Offline training of the expression classifier: datasets, splits, ImageNet init, training, CV, export.

Entry points: `python -m training.train`, `python -m training.cv`, `python -m training.evaluate`,
`python -m training.export`, run from the checkout's root (the package is not installed). Training sets come
from `training.data`, built on the runtime's readers (emotion_recognition_ros.core.face_data); the runtime never
imports this package. Every evaluation goes through emotion_recognition_ros.core.preprocess so the ROS node
sees faces exactly as training and scoring did.
"""

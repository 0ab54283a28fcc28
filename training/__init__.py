"""Offline training of the expression classifier: datasets, splits, ImageNet init, training, CV, export.

Entry points: `python -m training.train`, `python -m training.cv`, `python -m training.evaluate`,
`python -m training.export`. Every evaluation goes through emotion_recognition_ros.core.preprocess so the
ROS node sees faces exactly as training and scoring did.
"""

"""emotion_recognition_ros: facial-expression recognition with Grad-CAM explanations for ROS 2.

The ROS-free core (detector, preprocessing, classifier, tracker, smoother, explainer, pipeline) lives in
this package next to the thin ROS nodes; importing the core never imports rclpy.
"""
__version__ = "0.1.0"

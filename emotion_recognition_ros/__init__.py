"""emotion_recognition_ros: facial-expression recognition with Grad-CAM explanations for ROS 2.

core/ is the ROS-free perception pipeline (importing it never imports rclpy), ros/ the thin nodes over it,
tools/ the offline command-line tools, media/ frame sources; see docs/install.md, "Repository layout".
"""
__version__ = "0.1.0"

"""The ROS-free core: detection, tracking, preprocessing, classification, Grad-CAM, and the pipeline wiring
them. Imports no rclpy and no ROS message package (test/test_architecture.py enforces it)."""

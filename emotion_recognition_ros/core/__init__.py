"""ROS-free core of emotion_recognition_ros (the class vocabulary; more modules move here over time)."""

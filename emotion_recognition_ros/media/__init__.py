"""ROS-free frame sources (video, folder, camera, synthetic CK+ scenes) for the image_source node, tools and
benchmarks."""

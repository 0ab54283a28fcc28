"""The thin ROS 2 layer over core/: nodes, parameters, message conversion, worker threads, diagnostics."""

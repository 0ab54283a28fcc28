"""The face datasets' files, read: CK+ class-folder trees and FER+ label.csv splits (no torch, no ROS).

One reader per layout, shared by the runtime (the demo's synthetic scenes, media/scenes.py) and by the
offline training package, which builds its training sets (training/data/) on these readers. The dependency
points one way: training imports the runtime, never the reverse (test/test_architecture.py).
"""

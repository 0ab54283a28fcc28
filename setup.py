"""ament_python package `emotion_recognition_ros`: the node, its core, the demo and the tools.

The offline `training` package is not installed: it runs from the repository (`python -m training.train` at
the checkout's root; scripts/run puts the root on PYTHONPATH), so no top-level module named `training` lands
on a robot's path, where another package of that generic name could shadow it or be shadowed.
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "emotion_recognition_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={PACKAGE: ["models/*.safetensors", "models/*.json", "models/*.md"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml") + glob("config/*.rviz")),
        (f"share/{PACKAGE}/models", sorted(glob(f"{PACKAGE}/models/*.safetensors") + glob(f"{PACKAGE}/models/*.json")
                                           + glob(f"{PACKAGE}/models/*.md"))),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="emotion_recognition_ros maintainers",
    description="Facial-expression recognition with Grad-CAM explanations for ROS 2",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            f"emotion_node = {PACKAGE}.ros.emotion_node:main",
            f"image_source = {PACKAGE}.ros.image_source_node:main",
            f"bag_recorder = {PACKAGE}.tools.bag_recorder:main",
            f"evaluate_bag = {PACKAGE}.tools.evaluate_bag:main",
            f"emotion_demo = {PACKAGE}.tools.demo:main",
        ],
    },
)

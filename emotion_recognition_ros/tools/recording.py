"""What a bag holds for an evaluation: frame stamps and every EmotionArray, read once (shared by evaluate_bag
and its plots)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .bag_io import read_messages, stamp_ns, summarize

DEFAULT_IMAGE_TOPIC = "/image_raw"
DEFAULT_EMOTION_TOPIC = "/emotion"


class EvaluationError(ValueError):
    """The bag and the options do not allow an evaluation; the message says why."""


@dataclass
class Face:
    face_id: int
    label: str
    confidence: float
    box: tuple[float, float, float, float]


@dataclass
class Result:
    stamp_ns: int
    recv_ns: int
    faces: list[Face]
    class_names: list[str]


@dataclass
class Recording:
    frames: dict[int, int]  # image header stamp -> receive time
    results: list[Result]
    model_ids: list[str] = field(default_factory=list)


def read_recording(bag: str | Path, image_topic: str = DEFAULT_IMAGE_TOPIC,
                   emotion_topic: str = DEFAULT_EMOTION_TOPIC) -> Recording:
    """The frames' stamps and every result, after checking that the bag has both topics."""
    summary = summarize(bag)
    available = ", ".join(sorted(summary.topics)) or "none"
    for topic, kind in ((image_topic, "image"), (emotion_topic, "emotion")):
        if topic not in summary.topics:
            raise EvaluationError(f"{bag}: no {kind} topic {topic} in the bag (topics: {available})")
    expected = {image_topic: "sensor_msgs/msg/Image", emotion_topic: "emotion_msgs/msg/EmotionArray"}
    for topic, msgtype in expected.items():
        if summary.topics[topic][0] != msgtype:
            raise EvaluationError(f"{bag}: topic {topic} carries {summary.topics[topic][0]}, expected {msgtype}")
    frames: dict[int, int] = {}
    results: list[Result] = []
    model_ids: list[str] = []
    for item in read_messages(bag, [image_topic, emotion_topic]):
        stamp = stamp_ns(item.msg.header)
        if item.topic == image_topic:
            frames.setdefault(stamp, item.recv_ns)
            continue
        faces = [Face(int(e.face_id), str(e.label), float(e.confidence),
                      (float(e.roi.x_offset), float(e.roi.y_offset), float(e.roi.width), float(e.roi.height)))
                 for e in item.msg.emotions]
        names = next((list(e.class_names) for e in item.msg.emotions if len(e.class_names)), [])
        results.append(Result(stamp, item.recv_ns, faces, names))
        if item.msg.model_id and item.msg.model_id not in model_ids:
            model_ids.append(item.msg.model_id)
    if not frames:
        raise EvaluationError(f"{bag}: topic {image_topic} has no messages")
    if not results:
        raise EvaluationError(f"{bag}: topic {emotion_topic} has no messages (did the node run?)")
    return Recording(frames, results, model_ids)

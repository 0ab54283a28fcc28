"""Where frames come from: a video file, an image folder, a V4L2 camera, or embedded synthetic scenes.

ROS-free, so the image source node, the demo and the tests share one implementation. Every source yields
`Frame`s (BGR uint8) and, for synthetic scenes, the ground truth of the faces it pasted, which is what lets
the demo and the tests measure accuracy end to end.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

# FFmpeg prints its own complaints about a corrupt file to stderr; our SourceError already says it in one
# line. Read when OpenCV first opens a video, so it must be set before that (a user's setting wins).
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from skimage import data as skimage_data  # noqa: E402

from ..core.classes import CKPLUS6  # noqa: E402
from ..core.face_data.ckplus import DEFAULT_CKPLUS  # noqa: E402
from ..core.face_data.ferplus import DEFAULT_FERPLUS_TEST  # noqa: E402
from ..core.face_data.images import IMAGE_SUFFIXES  # noqa: E402
from .scenes import load_faces, load_ferplus_faces, make_scene  # noqa: E402

SYNTHETIC_KINDS = ("synthetic", "scenes", "ferplus", "astronaut")
CAMERA_RE = re.compile(r"^(?:\d+|/dev/video\d+)$")
# Where scikit-image's astronaut photo (Eileen Collins, smiling) has her face, in its 512x512 pixels.
ASTRONAUT_FACE = (168, 66, 100, 116)
ASTRONAUT_LABEL = "happy"


class SourceError(ValueError):
    """A source that cannot deliver frames; the message names the source and the problem."""


@dataclass
class Frame:
    image: np.ndarray  # uint8 BGR HxWx3
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # ground-truth faces (x, y, w, h)
    labels: list[str] = field(default_factory=list)  # their expressions; empty when unknown


class FrameSource:
    """Base class: `read()` gives the next frame or None at the end; `rewind()` starts over if it can."""

    name = "source"
    fps: float = 0.0  # the source's own frame rate when it has one (video files, cameras), else 0

    def read(self) -> Frame | None:
        raise NotImplementedError

    def rewind(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class VideoSource(FrameSource):
    """A video file or a camera (index or /dev/videoN) through cv2.VideoCapture."""

    def __init__(self, spec: str | int):
        self.is_camera = isinstance(spec, int) or bool(CAMERA_RE.match(str(spec)))
        self.spec = int(spec) if isinstance(spec, str) and spec.isdigit() else spec
        self.name = f"camera {spec}" if self.is_camera else str(spec)
        self.cap = _quiet_capture(self.spec)
        if not self.cap.isOpened():
            what = "camera cannot be opened (is it connected, and is it free?)" if self.is_camera \
                else "not a readable video (unknown format or corrupt file)"
            raise SourceError(f"{self.name}: {what}")
        # Read one frame now so a corrupt file fails here, with its name, rather than later in a timer.
        ok, first = self.cap.read()
        if not ok or first is None or first.size == 0:
            self.cap.release()
            raise SourceError(f"{self.name}: opened, but no frame could be read from it")
        self._pending: np.ndarray | None = first
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not 0.0 < self.fps < 1000.0:
            self.fps = 0.0

    def read(self) -> Frame | None:
        if self._pending is not None:
            image, self._pending = self._pending, None
            return Frame(_as_bgr(image))
        ok, image = self.cap.read()
        return Frame(_as_bgr(image)) if ok and image is not None and image.size else None

    def rewind(self) -> bool:
        if self.is_camera:
            return False
        self.cap.release()
        self.cap = _quiet_capture(self.spec)
        return self.cap.isOpened()

    def close(self) -> None:
        self.cap.release()


class FolderSource(FrameSource):
    """The images of a folder (or one image file), in name order. Unreadable files are skipped."""

    def __init__(self, path: Path, warn=None):
        self.name = str(path)
        if path.is_dir():
            self.paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self.paths:
                raise SourceError(f"{path}: folder has no images ({', '.join(IMAGE_SUFFIXES)})")
        else:
            self.paths = [path]
        self.warn = warn or (lambda message: None)
        self.index = 0
        self.delivered = 0
        # Fail now if not a single image decodes, rather than publish nothing forever.
        if _read_image(self.paths[0]) is None and not any(_read_image(p) is not None for p in self.paths[1:]):
            raise SourceError(f"{path}: none of its {len(self.paths)} image file(s) could be decoded")

    def read(self) -> Frame | None:
        while self.index < len(self.paths):
            path = self.paths[self.index]
            self.index += 1
            image = _read_image(path)
            if image is not None:
                self.delivered += 1
                return Frame(image)
            self.warn(f"{path}: not a readable image, skipped")
        return None

    def rewind(self) -> bool:
        self.index = 0
        return True


class SyntheticSource(FrameSource):
    """Camera-like frames from images that ship with the package's dependencies or with ../shared/data.

    `scenes`: CK+ faces of known expression pasted onto textured backgrounds (scenes.make_scene); each
    scene is held for `hold_frames` frames with fresh sensor noise, like a camera watching still people,
    so the node's tracker sees stable faces. `ferplus`: the same with FER+ Test faces (in-the-wild faces
    no shipped model trained on). `astronaut`: scikit-image's astronaut photo (one real, smiling face)
    drifting slowly across the frame. `synthetic`: ferplus when FER+ is present, else scenes when CK+ is,
    else astronaut.
    """

    def __init__(self, kind: str = "synthetic", width: int = 640, height: int = 480, seed: int = 0,
                 faces_per_frame: int = 2, hold_frames: int = 15, ckplus: Path | str | None = None,
                 max_frames: int = 0, face_size: tuple[int, int] = (100, 170)):
        if kind not in SYNTHETIC_KINDS:
            raise SourceError(f"unknown synthetic source '{kind}' (choose from {', '.join(SYNTHETIC_KINDS)})")
        if width < 64 or height < 64:
            raise SourceError(f"synthetic frames must be at least 64x64, got {width}x{height}")
        root = Path(ckplus) if ckplus else DEFAULT_CKPLUS
        if kind == "synthetic":
            kind = ("ferplus" if DEFAULT_FERPLUS_TEST.is_dir() and not ckplus
                    else "scenes" if root.is_dir() else "astronaut")
        self.kind, self.name = kind, f"synthetic:{kind}"
        self.width, self.height = width, height
        self.faces_per_frame, self.hold_frames = max(1, faces_per_frame), max(1, hold_frames)
        self.seed, self.max_frames, self.face_size = seed, max_frames, face_size
        self.fps = 0.0
        if kind in ("scenes", "ferplus"):
            try:
                self.faces = load_faces(root, CKPLUS6) if kind == "scenes" else load_ferplus_faces()
            except (FileNotFoundError, ValueError) as exc:
                raise SourceError(f"synthetic:{kind}: {exc}") from exc
        else:
            self.astronaut = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
        self._photo: np.ndarray | None = None
        self.rewind()

    def rewind(self) -> bool:
        self.rng = np.random.default_rng(self.seed)
        self.count = 0
        self._scene: Frame | None = None
        return True

    def read(self) -> Frame | None:
        if self.max_frames and self.count >= self.max_frames:
            return None
        if self.count % self.hold_frames == 0 or self._scene is None:
            self._scene = self._next_scene() if self.kind != "astronaut" else None
        frame = self._scene_frame() if self.kind != "astronaut" else self._astronaut_frame()
        self.count += 1
        return frame

    def _next_scene(self) -> Frame:
        # Faces of different classes per scene, so every scene exercises several labels at once.
        picks = self.rng.choice(len(self.faces), size=self.faces_per_frame, replace=False)
        small = min(self.face_size[1], self.height // 2, self.width // (self.faces_per_frame + 1))
        sizes = (min(self.face_size[0], small), small)
        scene = make_scene([self.faces[i] for i in picks], self.width, self.height, sizes, self.rng)
        return Frame(scene.frame, list(scene.boxes), list(scene.labels))

    def _scene_frame(self) -> Frame:
        assert self._scene is not None
        return Frame(_sensor_noise(self._scene.image, 3.0), list(self._scene.boxes), list(self._scene.labels))

    def _astronaut_frame(self) -> Frame:
        # The photo scaled to the frame height, panning left and right by a few pixels per frame.
        scale = self.height / self.astronaut.shape[0]
        if self._photo is None:
            self._photo = cv2.resize(self.astronaut, (round(self.astronaut.shape[1] * scale), self.height),
                                     interpolation=cv2.INTER_AREA)
        photo = self._photo
        canvas = np.full((self.height, self.width, 3), 40, np.uint8)
        span = max(0, self.width - photo.shape[1])
        offset = int(span / 2 + (span / 2) * np.sin(self.count / 25.0))
        visible = photo[:, : self.width - offset] if photo.shape[1] > self.width - offset else photo
        canvas[:, offset:offset + visible.shape[1]] = visible
        x, y, w, h = (round(v * scale) for v in ASTRONAUT_FACE)
        return Frame(_sensor_noise(canvas, 2.0), [(x + offset, y, w, h)], [ASTRONAUT_LABEL])


def open_source(spec: str | int, *, width: int = 640, height: int = 480, seed: int = 0,
                faces_per_frame: int = 2, hold_frames: int = 15, ckplus: Path | str | None = None,
                warn=None) -> FrameSource:
    """Open a source by name: 'synthetic' | 'scenes' | 'astronaut' | camera index | /dev/videoN | folder |
    image file | video file. Raises SourceError with the name and the problem."""
    spec_str = str(spec).strip()
    if not spec_str:
        raise SourceError("empty source: give a video file, an image folder, a camera index or 'synthetic'")
    if spec_str in SYNTHETIC_KINDS:
        return SyntheticSource(spec_str, width, height, seed, faces_per_frame, hold_frames, ckplus)
    if CAMERA_RE.match(spec_str):
        return VideoSource(spec_str)
    path = Path(spec_str).expanduser()
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder (nor a camera index or one of "
                          f"{', '.join(SYNTHETIC_KINDS)})")
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return FolderSource(path, warn)
    return VideoSource(str(path))


def resize_frame(frame: Frame, width: int, height: int) -> Frame:
    """Resize to width x height (0 keeps that side's aspect), scaling the ground-truth boxes alike."""
    h0, w0 = frame.image.shape[:2]
    if not width and not height:
        return frame
    width = width or round(w0 * height / h0)
    height = height or round(h0 * width / w0)
    if (width, height) == (w0, h0):
        return frame
    sx, sy = width / w0, height / h0
    image = cv2.resize(frame.image, (width, height), interpolation=cv2.INTER_AREA if sx < 1 else cv2.INTER_LINEAR)
    boxes = [(round(x * sx), round(y * sy), round(w * sx), round(h * sy)) for x, y, w, h in frame.boxes]
    return Frame(image, boxes, list(frame.labels))


def _sensor_noise(image: np.ndarray, sigma: float) -> np.ndarray:
    """`image` plus Gaussian noise, saturated to uint8. OpenCV does it in C without holding Python's GIL:
    numpy's version took ~35 ms per 640x480 frame and starved the other nodes of an in-process demo."""
    noise = np.empty(image.shape, np.int16)
    cv2.randn(noise, (0.0,) * 3, (sigma,) * 3)  # per channel: a scalar would only fill the first
    return cv2.convertScaleAbs(cv2.add(image.astype(np.int16), noise))


def _quiet_capture(spec: str | int) -> cv2.VideoCapture:
    """cv2.VideoCapture without OpenCV's own warnings on stderr: a failure becomes one SourceError line."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        return cv2.VideoCapture(spec)
    finally:
        cv2.utils.logging.setLogLevel(level)


def _read_image(path: Path) -> np.ndarray | None:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return None if image is None or image.size == 0 else _as_bgr(image)


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image


def labelled_classes(frames: Sequence[Frame]) -> list[str]:
    return sorted({label for frame in frames for label in frame.labels})

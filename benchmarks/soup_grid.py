"""FER+ Valid (selection data only): each model alone, and for every group of two or more of them both the
ensemble (calibrated probabilities averaged: n networks per face) and the weight soup (training.soup: one
network per face, batch norm re-measured on training faces).

    python -m benchmarks.soup_grid --models default runs/a/model runs/b/model --threads 2
    python -m benchmarks.soup_grid --models default runs/a/model runs/b/model runs/c/model --sizes 3 4
"""
from __future__ import annotations

import argparse
from itertools import combinations

import numpy as np

from emotion_recognition_ros.core.data_paths import dataset_path
from emotion_recognition_ros.core.device import set_threads
from emotion_recognition_ros.core.model_io import load_model
from training.data import load_dataset
from training.inference import predict_proba
from training.soup import make_soup

from .ferplus_levers import line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soup_grid", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True, help="two or more models fine-tuned from one start")
    parser.add_argument("--data", default=str(dataset_path("ferplus") / "FER2013Valid"))
    parser.add_argument("--bn-data", default=str(dataset_path("ferplus") / "FER2013Train"))
    parser.add_argument("--bn-faces", type=int, default=8000, help="training faces for batch norm (0 = all)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="group sizes to try (default: 2 to all)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    meta = load_model(args.models[0], "cpu")[1]
    val = load_dataset(args.data, meta.class_names)
    bn_data = load_dataset(args.bn_data, meta.class_names)
    alone = {}
    for name in args.models:
        net, net_meta = load_model(name, "cpu")
        alone[name] = predict_proba(net, net_meta, val.images, "cpu")
        print(line(name, alone[name], val.labels, meta.class_names), flush=True)
    for size in args.sizes or range(2, len(args.models) + 1):
        for group in combinations(args.models, size):
            label = " + ".join(group)
            ensemble = np.mean([alone[name] for name in group], axis=0)
            print(line(f"ensemble of {label}", ensemble, val.labels, meta.class_names), flush=True)
            soup, soup_meta = make_soup(group, bn_data, args.bn_faces)
            probs = predict_proba(soup, soup_meta, val.images, "cpu")
            print(line(f"soup of {label}", probs, val.labels, meta.class_names), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

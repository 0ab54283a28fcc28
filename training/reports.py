"""Per-run artefacts: metrics JSON, learning curves and confusion-matrix PNGs, and the model card."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from emotion_recognition_ros.plots import new_figure, plot_confusion_matrix, save_figure

CKPLUS_LICENCE = (
    "CK+ (Extended Cohn-Kanade) is licensed for non-commercial research use only; models trained on it inherit "
    "that restriction. Cite: P. Lucey, J. F. Cohn, T. Kanade, J. Saragih, Z. Ambadar, I. Matthews, \"The Extended "
    "Cohn-Kanade Dataset (CK+): A complete dataset for action unit and emotion-specified expression\", CVPR "
    "Workshops 2010; and T. Kanade, J. F. Cohn, Y. Tian, \"Comprehensive database for facial expression "
    "analysis\", IEEE FG 2000.")

FERPLUS_LICENCE = (
    "FER+ labels: MIT licence (Microsoft; Barsoum, Zhang, Canton Ferrer, Zhang, \"Training Deep Networks for Facial "
    "Expression Recognition with Crowd-Sourced Label Distribution\", ICMI 2016). FER2013 images: released for "
    "research in a public challenge (Goodfellow et al., \"Challenges in Representation Learning\", ICONIP 2013); "
    "use them, and models trained on them, for research.")


def _trained_on(meta) -> tuple[bool, bool]:
    """(FER+ among the training data, CK+ among it), read from the metadata's data description."""
    text = json.dumps(meta.training.get("data", "")).lower()
    ferplus = "ferplus" in text or "fer2013" in text
    ckplus = "ckplus" in text or "ck+" in text or not ferplus  # the historical default: CK+ only
    return ferplus, ckplus


def write_json(path: str | Path, data: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=_jsonable) + "\n")
    return path


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def plot_curves(history: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """Loss and accuracy per epoch (train on augmented data; val when present)."""
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = new_figure(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r["train_loss"] for r in history], label="train (augmented)")
    ax_acc.plot(epochs, [r["train_acc"] for r in history], label="train (augmented)")
    if history and "val_loss" in history[0]:
        ax_loss.plot(epochs, [r["val_loss"] for r in history], label="validation")
        ax_acc.plot(epochs, [r["val_acc"] for r in history], label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.01))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_confusion(matrix: Sequence[Sequence[int]], class_names: Sequence[str], path: str | Path,
                   title: str = "") -> Path:
    """Counts with row-normalised colour (recall per true class): the package's one confusion plot."""
    return plot_confusion_matrix(matrix, class_names, path, title)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


WEIGHTS_LICENCE = (
    "The weights and this card ship with the package under its licence, Apache-2.0 (`LICENSE`, `package.xml`). "
    "They were learned from the datasets below and carry those datasets' terms with them: Apache-2.0 does not "
    "lift them. Use the weights, and anything trained from them, only as the data's terms allow (research use; "
    "non-commercial research only where CK+ is involved).")

STARTS_FROM_DEFAULT = (
    "This model starts from the weights of the shipped `default` model (`pretrained: model:default`), which was "
    "trained on FER+ / FER2013, so those terms apply to it too.")


def _soup_lines(training: dict) -> list[str]:
    """The card's account of a weight soup (training.soup): the record above is its first model's."""
    if "soup_of" not in training:
        return []
    return [f"- Weight soup (`python -m training.soup`) of {len(training['soup_of'])} models fine-tuned from one "
            f"start, uniform average: {', '.join(f'`{m}`' for m in training['soup_of'])}; batch norm "
            f"{training.get('batchnorm', 'averaged')}. Data, protocol, recipe and seed above are the first "
            "model's; the others' records are in the JSON (`training.ingredients`)."]


def model_card(meta, path: str | Path, extra: str = "") -> Path:
    """Markdown model card from a ModelMetadata (training + metrics) plus optional free text."""
    path = Path(path)
    training = meta.training or {}
    recipe = training.get("recipe", {})
    lines = [f"# Model card: `{meta.architecture}` expression classifier", "",
             f"- Model id: `{meta.model_id}`",
             f"- Classes (output order): {', '.join(meta.class_names)}",
             f"- Input: face crop -> gray -> {meta.source_size} px (INTER_AREA) -> {meta.input_size} px, copied to "
             f"{meta.in_chans} channels, normalised with mean {meta.mean[0]} / std {meta.std[0]} "
             "(`emotion_recognition_ros.core.preprocess.faces_to_batch`)",
             f"- Expected face crop: {json.dumps(meta.face_crop)} (tight square face box, as in CK+48)", "",
             "## Training data and protocol", "",
             f"- Data: {training.get('data', 'unknown')}",
             f"- Protocol: {training.get('protocol', 'unknown')}",
             f"- Recipe: {json.dumps(recipe, sort_keys=True)}" if recipe else "- Recipe: unknown",
             f"- Seed: {training.get('seed', '?')}, epochs run: {training.get('epochs_run', '?')}",
             *_soup_lines(training), "",
             "## Metrics (each with the protocol that produced it)", ""]
    if meta.metrics:
        for name, value in meta.metrics.items():
            if isinstance(value, dict) and "accuracy" in value:
                spread = f" ± {_pct(value['accuracy_std'])}" if "accuracy_std" in value else ""
                if "accuracy_no_tta_mean" in value and value.get("tta_flip"):
                    spread += (f" with flip TTA; {_pct(value['accuracy_no_tta_mean'])} (mean over folds) in one "
                               "pass without TTA, as the node runs")
                lines.append(f"- **{name}**: accuracy {_pct(value['accuracy'])}{spread}"
                             + (f", macro-F1 {value['macro_f1']:.3f}" if "macro_f1" in value else "")
                             + (f", ECE {value['ece']:.3f}" if "ece" in value else "")
                             + (f", n = {value['n']}" if "n" in value else "")
                             + (f" — {value['protocol']}" if "protocol" in value else ""))
            else:
                lines.append(f"- {name}: {value}")
    else:
        lines.append("- none recorded")
    ferplus, ckplus = _trained_on(meta)
    lines += ["", "## Intended use", "",
              f"Research on human-robot interaction: a per-face estimate of {len(meta.class_names)} facial "
              f"expressions ({', '.join(meta.class_names)}), plus Grad-CAM explanations, from a camera, as a signal "
              "to be checked, not a fact about a person's inner state.", "",
              f"Probabilities are softmax(logits / T) with T = {meta.temperature:.3f} "
              + ("(temperature scaling fitted on validation data)." if meta.temperature != 1.0
                 else "(no temperature fitted)."), "",
              "## Limitations", ""]
    if ferplus:
        lines.append("- FER+ faces are 48x48 gray web images, mostly frontal and cropped by a detector: expect lower "
                     "accuracy on profiles, heavy occlusion, children and people under-represented on the web. "
                     "Disgust and contempt have few training faces (under 200 each) and the weakest recall.")
    if ckplus:
        lines.append("- CK+: posed, frontal, evenly lit lab expressions at their peak, from a small and "
                     "demographically narrow set of adults. Spontaneous, subtle, non-frontal, occluded or poorly "
                     "lit faces will score much lower; so may people unlike the CK+ subjects.")
    if "neutral" not in meta.class_names:
        lines.append("- No 'neutral' class: every face is forced into one of the expressions; use the confidence.")
    if ckplus:
        lines.append("- On CK+ a random per-image split's score is inflated (frames of one person on both sides); "
                     "the subject-independent score is the one that predicts performance on new people.")
    lines += ["- Not for decisions about individuals (hiring, policing, health, education).", "",
              "## Licence: the weights and the training data", "", WEIGHTS_LICENCE, ""]
    from_default = recipe.get("pretrained") == "model:default"
    lines += ([FERPLUS_LICENCE, ""] if ferplus or from_default else []) + ([CKPLUS_LICENCE, ""] if ckplus else [])
    lines += [STARTS_FROM_DEFAULT, ""] if from_default and not ferplus else []
    if extra:
        lines += [extra.rstrip(), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path

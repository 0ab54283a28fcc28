"""Training sets as in-memory gray images with labels and (when known) subject ids: one module per source.

  * `folders`: any class-folder tree `<root>/<class>/<image>`, CK+48 among them (subject ids parsed from
    CK+'s names by emotion_recognition_ros.core.face_data.ckplus),
  * `ferplus`: FER+ split folders, `<split>/label.csv` + `fer<row>.png` (majority or vote-distribution labels),
  * `fer2013`: FER2013's CSV (`emotion,pixels,Usage`, 48x48 gray pixels; no subject ids),
  * `mixture`: several of these as one, in one vocabulary, each with a weight,
  * `layouts`: `load_dataset`, which tells the layouts apart; `dataset`: the `FaceDataset` they all return;
    `splits`: train / validation / test splits (per image or grouped by subject).

The file readers live in the runtime package (emotion_recognition_ros.core.face_data), which the demo's
scenes share; these modules build training sets on them.
"""
from .dataset import DatasetError, FaceDataset
from .fer2013 import FER2013_CLASSES, load_fer2013
from .ferplus_labels import load_ferplus
from .folders import load_folder
from .layouts import load_dataset
from .mixture import load_mixture

__all__ = ["DatasetError", "FaceDataset", "FER2013_CLASSES", "load_dataset", "load_fer2013", "load_ferplus",
           "load_folder", "load_mixture"]

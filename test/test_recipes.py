"""The shipped recipe files are the presets, and --config reads them (flags still override)."""
from __future__ import annotations

import argparse

import pytest

from conftest import REPO
from training.cli import add_common, recipe_file, recipe_from_args
from training.presets import PRESETS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_recipe_file_is_its_preset(name):
    assert recipe_file(REPO / "training" / "recipes" / f"{name}.yaml") == PRESETS[name]


def test_config_is_the_base_and_flags_override_it():
    parser = argparse.ArgumentParser()
    add_common(parser)
    args = parser.parse_args(["--config", str(REPO / "training" / "recipes" / "ferplus.yaml"), "--epochs", "3"])
    recipe = recipe_from_args(args)
    assert recipe.epochs == 3 and recipe.label_scheme == PRESETS["ferplus"].label_scheme == "soft"

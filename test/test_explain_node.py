"""The node's heatmap outputs over Fast DDS (issue 27): region shares in Emotion messages when a map is made for
every frame, empty otherwise; bad explain_method / explain_layer values refused with the valid names."""
from __future__ import annotations

import numpy as np
import pytest

from emotion_recognition_ros.core.explain import REGION_NAMES
from emotion_recognition_ros.media.scenes import make_scene
from test_node import Rig


@pytest.fixture(scope="module")
def rig(faces):
    rig = Rig({"heatmap_every_frame": True})
    yield rig
    rig.close()


def test_region_shares_travel_in_each_emotion_and_only_with_a_map(rig, faces):
    from rclpy.parameter import Parameter

    scene = make_scene([faces[20]], rng=1)
    e = rig.send(rig.image(scene.frame)).emotions[0]
    assert list(e.region_names) == list(REGION_NAMES) and len(e.region_shares) == 4
    assert sum(e.region_shares) == pytest.approx(1.0, abs=1e-4) and min(e.region_shares) >= 0
    assert e.explained_class == e.class_names[int(np.argmax(e.raw_scores))]  # this frame's label
    assert rig.node.set_parameters([Parameter("heatmap_every_frame", value=False)])[0].successful
    e = rig.send(rig.image(scene.frame)).emotions[0]
    assert e.explained_class == "" and list(e.region_names) == [] and len(e.region_shares) == 0


def test_bad_method_and_layer_are_refused_with_the_valid_names(rig):
    from rclpy.parameter import Parameter

    bad = rig.node.set_parameters([Parameter("explain_method", value="scorecam")])[0]
    assert not bad.successful and "gradcam, hirescam, layercam, gradcam++" in bad.reason
    bad = rig.node.set_parameters([Parameter("explain_layer", value="blocks.99")])[0]
    assert not bad.successful and "stride8" in bad.reason and "conv_head" in bad.reason
    assert rig.node.set_parameters([Parameter("explain_layer", value="stride16")])[0].successful
    assert rig.node.pipeline.config.explain_layer == "stride16"

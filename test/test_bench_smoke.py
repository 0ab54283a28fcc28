"""The benchmark machinery on a couple of small frames, so it cannot rot (speed is never asserted here).

Runs `benchmarks.bench` end to end without the fer peer: in-process stage timings with the node's code,
then the real emotion node in its own process over DDS, answers matched to frames by stamp and scored
against the pasted faces; checks the JSON it writes is complete and self-consistent.
"""
from __future__ import annotations

import json

import pytest
from conftest import CKPLUS, require_shared_data


@pytest.fixture(autouse=True)
def _threads():
    import cv2
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    yield
    torch.set_num_threads(before)


def test_bench_runs_on_two_frames(tmp_path):
    require_shared_data()
    from benchmarks import bench

    rc = bench.main(["--quick", "--no-peer", "--sizes", "320x240", "--faces", "1", "--frames", "2",
                     "--hold", "2", "--duration", "0", "--repeats", "1", "--device", "cpu", "--threads", "1",
                     "--ckplus", str(CKPLUS), "--output", str(tmp_path)])
    assert rc == 0
    data = json.loads((tmp_path / "bench.json").read_text())
    assert (tmp_path / "bench.png").stat().st_size > 0

    [stages] = data["stages"]
    assert stages["key"] == "320x240/1f" and stages["frames"] == 2
    for name in ("decode", "detect", "preprocess", "classify", "explain", "publish"):
        st = stages["stages"][name]
        assert st["n"] == 2 and 0.0 <= st["p50"] <= st["p95"], (name, st)
    assert stages["stages"]["classify"]["p50"] > 0 and stages["fps"] > 0

    [run] = data["dds"]["closed"]
    assert run["node"] == "ours" and run["key"] == "320x240/1f"
    assert run["sent"] == 4 and run["answered"] == 4, run  # closed loop: every frame answered
    assert run["stale"] == 0
    assert 0 < run["latency_ms"]["p50"] <= run["latency_ms"]["max"]
    assert run["model_id"].startswith("tf_efficientnet_lite0@") or "@" in run["model_id"]
    assert run["score"]["faces"] == 4 and run["score"]["frames"] == 4
    assert run["resources"]["peak_rss_mib"] > 50
    assert data["comparison"] == []  # no peer
    assert data["meta"]["transport"].startswith("profile ")

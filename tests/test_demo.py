"""``speckle-lab demo`` end to end at a tiny scale: acquire on the simulated rig, train both models,
evaluate, report. A tiny rig (32×32 SLM window) and protocol (4 faces, 2 diffusers, 0/20/40 mm) keep it
to seconds; the pipeline is the one ``make demo`` runs."""

from __future__ import annotations

import json

import pytest

from speckle_core.errors import UserError
from speckle_lab.demo import DemoSettings, run_demo

RIG = """
name = "tiny simulated rig"
[slm]
kind = "sim"
window_px = [32, 32]
[camera]
kind = "sim"
sensor_px = [48, 48]
[stage]
kind = "sim"
[changer]
kind = "sim"
slots = { 1 = "120", 2 = "1500" }
[sim]
seed = 0
"""

PROTOCOL = """
name = "tiny demo"
[faces]
source = "embedded"
count = 4
holdout = 1
target_px = [32, 32]
[camera]
roi_px = [32, 32]
[[blocks]]
diffuser = "120"
distances_mm = [0, 20]
[[blocks]]
diffuser = "120"
distances_mm = [40]
role = "validation"
[[blocks]]
diffuser = "1500"
distances_mm = [0, 20]
[[blocks]]
diffuser = "1500"
distances_mm = [40]
role = "validation"
[dark]
frames = 1
[stability]
reference_every = 0
"""

METRIC_KEYS = {"n", "pcc", "ssim", "jaccard", "psnr"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    (folder / "rig.toml").write_text(RIG)
    (folder / "protocol.toml").write_text(PROTOCOL)
    return folder


@pytest.fixture(scope="module")
def demo_run(tiny):
    out = tiny / "out"
    lines: list[str] = []
    code = run_demo(out, DemoSettings.make(fast=True), protocol_path=tiny / "protocol.toml",
                    rig_path=str(tiny / "rig.toml"), progress=False, log=lines.append)
    return code, out, lines


def test_demo_exits_0_and_writes_report_metrics_and_figure(demo_run):
    code, out, _ = demo_run
    assert code == 0
    for name in ("quick.h5", "report.html", "metrics.json", "reconstructions.png",
                 "spt-unet-b/best.pt", "unet/best.pt"):
        assert (out / name).is_file(), name
    assert (out / "report.html").read_text().startswith("<!doctype html>")
    assert (out / "reconstructions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metrics_json_holds_both_models_at_the_unseen_distance_and_on_held_out_faces(demo_run):
    _, out, _ = demo_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["models"]) == {"SpT UNet-B", "CNN UNet"}
    for label, model in metrics["models"].items():
        assert model["model_name"] == {"SpT UNet-B": "spt-unet-b", "CNN UNet": "unet"}[label]
        assert {"validation", "holdout"} <= set(model["summary"])
        for summary in model["summary"].values():
            assert set(summary) == METRIC_KEYS
            assert -1.0 <= summary["pcc"] <= 1.0
        validation = model["groups"]["validation"]
        assert {(r["diffuser"], r["distance_mm"]) for r in validation} == {("120", 40.0), ("1500", 40.0)}
        # 2 diffusers × the training-split faces less the test face that chooses the checkpoint (1 of 3)
        assert sum(r["n"] for r in validation) == 2 * 2
    demo = metrics["demo"]
    assert demo["settings"]["image_size"] == 16
    assert demo["settings"]["epochs"] == {"spt-unet-b": 1, "unet": 1, "spt-unet-b:no-attention": 1}
    assert {"acquire_s", "evaluate_s", "total_s"} <= set(demo["timings_s"])
    assert set(demo["reference_mean_face"]["holdout"]) == METRIC_KEYS


def test_a_second_run_reuses_the_dataset_and_the_trained_models(tiny, demo_run):
    _, out, _ = demo_run
    before = (out / "spt-unet-b" / "last.pt").stat().st_mtime_ns
    lines: list[str] = []
    code = run_demo(out, DemoSettings.make(fast=True), protocol_path=tiny / "protocol.toml",
                    rig_path=str(tiny / "rig.toml"), progress=False, log=lines.append)
    assert code == 0
    assert any("is complete: reusing it" in line for line in lines)
    assert sum("reusing it" in line for line in lines) == 4  # the dataset and the three compared models
    assert (out / "spt-unet-b" / "last.pt").stat().st_mtime_ns == before


def test_other_training_settings_in_the_same_folder_are_refused(tiny, demo_run):
    _, out, _ = demo_run
    with pytest.raises(UserError, match="epochs"):
        run_demo(out, DemoSettings.make(fast=True, epochs=2), protocol_path=tiny / "protocol.toml",
                 rig_path=str(tiny / "rig.toml"), progress=False, log=lambda _: None)


def test_a_dataset_from_another_protocol_is_refused(tiny, demo_run):
    _, out, _ = demo_run
    other = tiny / "other.toml"
    other.write_text(PROTOCOL.replace('name = "tiny demo"', 'name = "another"'))
    with pytest.raises(UserError, match="another protocol"):
        run_demo(out, DemoSettings.make(fast=True), protocol_path=other, rig_path=str(tiny / "rig.toml"),
                 progress=False, log=lambda _: None)


@pytest.mark.parametrize("option, value", [("image_size", 20), ("epochs", 0), ("batch_size", 0)])
def test_bad_settings_are_one_line_user_errors(option, value):
    with pytest.raises(UserError, match=option.replace("_", "-")):
        DemoSettings.make(**{option: value})

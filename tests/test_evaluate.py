"""Evaluation: metrics per group and condition, metrics.json and the self-contained report."""

import json
import re

import numpy as np
import pytest

from reconstruction.data import read_index
from reconstruction.evaluate import evaluate_checkpoints, group_metrics
from reconstruction.report import overlay
from speckle_lab.cli import run as cli_run
from tests.tiny_dataset import train_tiny, write_tiny_dataset


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    run = write_tiny_dataset(d / "run.h5")
    train_tiny(run, d / "a", epochs=2, test_fraction=0.3)
    train_tiny(run, d / "b", epochs=1, seed=1)
    ckpts = {"spt": d / "a" / "last.pt", "baseline": d / "b" / "last.pt"}
    result = evaluate_checkpoints(ckpts, run, d / "out")
    return run, d, result


def test_metrics_json_has_each_group_by_diffuser_and_distance(evaluated):
    run, d, _ = evaluated
    m = json.loads((d / "out" / "metrics.json").read_text())
    groups = m["models"]["spt"]["groups"]
    assert set(groups) == {"validation", "test", "holdout"}
    assert {(r["diffuser"], r["distance_mm"]) for r in groups["validation"]} == {("120", 40.0), ("600", 40.0)}
    assert {r["distance_mm"] for r in groups["holdout"]} == {0.0, 20.0, 40.0}
    for r in groups["validation"]:
        assert {"pcc", "ssim", "jaccard", "psnr", "n"} <= set(r)


def test_validation_counts_exclude_held_out_and_test_faces(evaluated):
    run, _, result = evaluated
    idx = read_index(run)
    test = result["models"]["spt"]["train_config"]["test_objects"]
    val = (idx.role == "validation") & (idx.face_split == "train") & ~np.isin(idx.object_index, test)
    n_val = int(val.sum())
    assert result["models"]["spt"]["summary"]["validation"]["n"] == n_val


def test_report_is_self_contained_with_tables_figures_and_comparison(evaluated):
    _, d, _ = evaluated
    html = (d / "out" / "report.html").read_text()
    assert "Table 1" in html and "Fig. 6" in html and "Fig. 7" in html and "Comparison" in html
    assert html.count("data:image/png;base64,") >= 5
    assert not re.search(r"src=['\"](?!data:)", html)  # nothing loaded from elsewhere


def test_overlay_colours_follow_the_paper():
    pred = np.array([[0.9, 0.9, 0.1, 0.1]])
    true = np.array([[1.0, 0.0, 1.0, 0.0]])
    rgb = overlay(pred, true)
    assert rgb[0].tolist() == [[255, 255, 255], [0, 200, 0], [220, 0, 0], [0, 0, 0]]


def test_group_metrics_average_per_condition(evaluated):
    run, _, _ = evaluated
    idx = read_index(run)
    pos = idx.select(roles=["validation"])
    per = {k: np.arange(len(pos), dtype=float) for k in ("pcc", "ssim", "jaccard", "psnr")}
    g = group_metrics(idx, pos, per)
    first = g["by_condition"][0]
    sel = idx.diffuser[pos] == first["diffuser"]
    assert first["pcc"] == pytest.approx(np.arange(len(pos))[sel].mean())
    assert g["summary"]["n"] == len(pos)


def test_cli_evaluate_writes_both_files(evaluated, tmp_path):
    run, d, _ = evaluated
    assert cli_run(["evaluate", str(d / "a" / "last.pt"), str(run), "--out", str(tmp_path / "e")]) == 0
    assert (tmp_path / "e" / "metrics.json").is_file() and (tmp_path / "e" / "report.html").is_file()

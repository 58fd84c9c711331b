"""``speckle-lab calibrate twin``: a run on a simulated rig with hidden optics, and the twin fitted to it."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import j1

from calibration.twin_stats import Block, grain_hwhm, run_stats
from hardware.rig import load_rig
from speckle_lab.cli import run
from tests._calibrate_helpers import write_twin_case

pytestmark = pytest.mark.timeout(600)


def acquire_and_fit(folder, *extra, **case) -> tuple[int, int]:
    protocol, rig = write_twin_case(folder, **case)
    acquired = run(["acquire", str(protocol), "--rig", str(rig), "--out", str(folder / "run.h5"),
                    "--no-progress"])
    assert acquired == 0
    return acquired, run(["calibrate", "twin", str(folder / "run.h5"), "--out", str(folder / "twin.toml"),
                          "--no-progress", *extra])


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason="known limit (issue 15 stays open): a weakly scattering diffuser's "
                   "correlation length can come out more than 20 % off (seen: 5.0 µm fitted as 3.4, 6.0 as "
                   "7.45) while NA and rms heights stay within their bounds; see docs/calibration.md")
@settings(max_examples=1, deadline=None, derandomize=True,  # one fixed draw: ~3 min of CPU each
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(na=st.floats(0.009, 0.015), a_h=st.floats(0.26, 0.36), a_w=st.floats(8.0, 12.0),
       b_h=st.floats(0.20, 0.26), b_w=st.floats(5.0, 9.0), seed=st.integers(0, 100))
def test_the_twin_recovers_the_hidden_na_heights_and_correlation_lengths(tmp_path_factory, na, a_h, a_w, b_h,
                                                                          b_w, seed):
    folder = tmp_path_factory.mktemp("twin")
    _, code = acquire_and_fit(folder, na=round(na, 5), a=(round(a_h, 4), round(a_w, 3)),
                              b=(round(b_h, 4), round(b_w, 3)), seed=seed, count=8)
    assert code == 0
    sim = tomllib.loads((folder / "twin.toml").read_text())["sim"]
    assert sim["imaging_na"] == pytest.approx(na, rel=0.10)
    for name, (h, w) in {"A": (a_h, a_w), "B": (b_h, b_w)}.items():
        assert sim["diffusers"][name]["rms_height_um"] == pytest.approx(h, rel=0.15), name
        assert sim["diffusers"][name]["corr_length_um"] == pytest.approx(w, rel=0.20), name
    assert sim["seed"] != seed  # the twin matches statistics, not the hidden screens
    assert load_rig(folder / "twin.toml").config.simulated
    assert (folder / "twin.report.png").stat().st_size > 1000


@pytest.mark.slow
def test_a_fully_developed_diffuser_is_reported_as_not_measurable(tmp_path, capsys):
    _, code = acquire_and_fit(tmp_path, "--iterations", "2", na=0.012, a=(0.9, 12.0), b=(0.22, 7.0), count=3)
    assert code == 0
    out = capsys.readouterr().out
    assert "diffuser A: the speckle is fully developed" in out
    text = (tmp_path / "twin.toml").read_text()
    assert "# note: diffuser A: the speckle is fully developed" in text


def test_a_run_at_one_distance_is_refused_in_one_line_and_nothing_is_written(tmp_path, capsys):
    protocol, rig = write_twin_case(tmp_path, na=0.012, a=(0.3, 10.0), b=(0.22, 7.0), count=3,
                                    distances="[0]")
    assert run(["acquire", str(protocol), "--rig", str(rig), "--out", str(tmp_path / "run.h5"),
                "--no-progress"]) == 0
    capsys.readouterr()
    code = run(["calibrate", "twin", str(tmp_path / "run.h5"), "--out", str(tmp_path / "twin.toml"),
                "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "too few distances" in err[0]
    assert not (tmp_path / "twin.toml").exists() and not (tmp_path / "twin.report.png").exists()


def test_the_grain_of_a_circular_pupil_is_its_jinc_squared_half_width():
    r = np.arange(0, 41, dtype=float)
    na_px = 0.05  # NA / λ in cycles per pixel
    v = 2 * np.pi * na_px * np.maximum(r, 1e-9)
    ac = (2 * j1(v) / v) ** 2
    assert grain_hwhm(ac) == pytest.approx(1.6163 / (2 * np.pi * na_px), rel=0.03)


def test_the_regression_on_the_empty_slot_finds_the_unscattered_share():
    rng = np.random.default_rng(0)
    empty = [rng.uniform(0.5, 1.5, (32, 32)).astype(np.float32) for _ in range(4)]
    speckle = [0.35 * e + 0.2 * rng.exponential(1.0, e.shape).astype(np.float32) for e in empty]
    blocks = [Block("empty", 0.0, 1.0, [0, 1, 2, 3], empty), Block("A", 0.0, 1.0, [0, 1, 2, 3], speckle),
              Block("empty", 20.0, 1.0, [0, 1, 2, 3], empty), Block("A", 20.0, 1.0, [0, 1, 2, 3], speckle)]
    stats = run_stats(blocks, "empty")
    assert stats.blocks[("A", 0.0)].alpha == pytest.approx(0.35, abs=0.02)
    assert stats.blocks[("A", 0.0)].beta_share == pytest.approx(0.2, abs=0.03)

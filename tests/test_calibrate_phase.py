"""``speckle-lab calibrate phase``: the hidden gray → phase curve of the simulated SLM, recovered."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calibration.phase import fit_phase
from hardware.lut import PhaseLUT
from hardware.sim.slm_response import SlmResponseSpec, true_phase_curve, true_pi_gray
from speckle_lab.cli import run
from tests._calibrate_helpers import WITHOUT_EMPTY, write_rig

pytestmark = pytest.mark.timeout(240)


def calibrate(tmp_path, rig, *extra) -> int:
    return run(["calibrate", "phase", "--rig", str(rig), "--out", str(tmp_path / "lut.csv"), "--no-progress",
                *extra])


@pytest.mark.slow
@settings(max_examples=3, deadline=None, derandomize=True,  # the same examples on every CI run
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pi_gray=st.floats(95.0, 235.0), gamma=st.floats(0.8, 2.0), saturation=st.floats(0.0, 1.5),
       seed=st.integers(0, 50))
def test_the_pi_level_is_recovered_within_two_gray_levels(tmp_path, pi_gray, gamma, saturation, seed):
    rig = write_rig(tmp_path, seed=seed, phase_curve="nonlinear", pi_gray=pi_gray, gamma=gamma,
                    saturation=saturation)
    assert calibrate(tmp_path, rig, "--step", "2") == 0
    lut = PhaseLUT.from_csv(tmp_path / "lut.csv")
    spec = SlmResponseSpec(phase_curve="nonlinear", pi_gray=pi_gray, gamma=gamma, saturation=saturation)
    truth = true_pi_gray(spec, 632.8, "full-wave")
    assert abs(lut.gray_pi - truth) <= 2.0
    true_curve = true_phase_curve(spec, 632.8, "full-wave")
    assert np.abs(lut.phase_rad - true_curve).max() < 0.1  # the whole curve, not just π
    assert (tmp_path / "lut.report.png").stat().st_size > 1000


def test_the_printout_gives_the_pi_level_its_uncertainty_and_the_rig_line(tmp_path, capsys):
    rig = write_rig(tmp_path, phase_curve="nonlinear", pi_gray=150.0)
    assert calibrate(tmp_path, rig, "--step", "4") == 0
    out = capsys.readouterr().out
    assert re.search(r"π gray level: 1[45]\d\.\d ± \d+\.\d", out), out
    assert 'lut_file = "lut.csv"' in out and "NOT TRUSTED" not in out


def test_a_half_wave_slm_that_never_reaches_pi_is_reported_as_untrusted(tmp_path, capsys):
    rig = write_rig(tmp_path, stroke="half-wave", phase_curve="nonlinear", pi_gray=200.0)
    assert calibrate(tmp_path, rig, "--step", "4") == 0
    assert "NOT TRUSTED: the phase never reaches π" in capsys.readouterr().out


@pytest.mark.parametrize("case, rig_kwargs, message", [
    ("no empty slot", {"slots": WITHOUT_EMPTY}, "no empty slot configured"),
    ("saturated", {"flux": 1.0e5}, "saturates at its shortest exposure"),
    ("weak light", {"flux": 1.0e-6}, "light is too weak"),
])
def test_refuses_in_one_line_and_writes_nothing(tmp_path, capsys, case, rig_kwargs, message):
    rig = write_rig(tmp_path, **rig_kwargs)
    assert calibrate(tmp_path, rig) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rig.toml"]


def test_the_fit_finds_pi_in_noiseless_synthetic_edges():
    spec = SlmResponseSpec(phase_curve="nonlinear", pi_gray=180.0, gamma=1.4)
    phi = true_phase_curve(spec, 632.8, "full-wave")
    g = np.arange(0, 256, 2)
    g_q = int(np.argmin(np.abs(phi - math.pi / 2)))
    fit = fit_phase(g, 1 - np.sin(phi[g] / 2) ** 2, 0.9 - 0.8 * np.sin((phi[g] - phi[g_q]) / 2) ** 2, g_q)
    assert fit.pi_gray == pytest.approx(180.0, abs=0.3) and fit.trusted

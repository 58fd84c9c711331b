"""``speckle-lab calibrate settle``: the hidden liquid-crystal response of the simulated SLM, recovered."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from calibration.settle import fit_direction
from speckle_lab.cli import run
from tests._calibrate_helpers import WITHOUT_EMPTY, write_rig

pytestmark = pytest.mark.timeout(240)


def true_settle_ms(rise_ms: float, fall_ms: float, share: float, factor: float) -> float:
    """The time at which the sim's two-exponential response is within 1 % of its target."""
    def left(tau):
        def residual(t):
            return (1 - share) * math.exp(-t / tau) + share * math.exp(-t / (factor * tau)) - 0.01
        return brentq(residual, 0.0, 1e5)
    return max(left(rise_ms), left(fall_ms))


def calibrate(tmp_path, rig, *extra) -> int:
    return run(["calibrate", "settle", "--rig", str(rig), "--out", str(tmp_path / "settle.toml"),
                "--no-progress", *extra])


@pytest.mark.slow
@settings(max_examples=3, deadline=None, derandomize=True,  # the same examples on every CI run
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rise=st.floats(2.0, 30.0), fall_ratio=st.floats(1.0, 2.5), share=st.sampled_from([0.0, 0.1, 0.25]),
       factor=st.floats(2.0, 4.0), seed=st.integers(0, 50))
def test_the_settle_time_is_recovered_within_ten_percent(tmp_path, rise, fall_ratio, share, factor, seed):
    rig = write_rig(tmp_path, window=96, seed=seed, rise_ms=rise, fall_ms=rise * fall_ratio, slow_share=share,
                    slow_factor=factor)
    assert calibrate(tmp_path, rig, "--max-ms", "3000", "--average", "8") == 0
    snippet = tomllib.loads((tmp_path / "settle.toml").read_text())
    truth = true_settle_ms(rise, rise * fall_ratio, share, factor)
    assert snippet["slm"]["settle_ms"] == pytest.approx(truth, rel=0.10)
    assert (tmp_path / "settle.report.png").stat().st_size > 1000


def test_the_printout_gives_both_directions_and_the_rig_line(tmp_path, capsys):
    rig = write_rig(tmp_path, rise_ms=5.0, fall_ms=12.0)
    assert calibrate(tmp_path, rig, "--max-ms", "500", "--delays", "24") == 0
    out = capsys.readouterr().out
    assert "rise: τ = " in out and "fall: τ = " in out
    assert "for the rig file, under [slm]:  settle_ms = " in out


def test_a_response_slower_than_the_longest_delay_is_untrusted(tmp_path, capsys):
    rig = write_rig(tmp_path, rise_ms=40.0, fall_ms=80.0)
    assert calibrate(tmp_path, rig, "--max-ms", "100", "--delays", "16") == 0
    assert "NOT TRUSTED: fall: the liquid crystal is still moving" in capsys.readouterr().out


def test_refuses_a_rig_without_an_empty_slot_and_writes_nothing(tmp_path, capsys):
    rig = write_rig(tmp_path, slots=WITHOUT_EMPTY)
    assert calibrate(tmp_path, rig) == 2
    assert "no empty slot configured" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rig.toml"]


def test_two_exponentials_are_told_from_one():
    t = np.concatenate([[0.0], np.geomspace(0.5, 1000, 39)])
    one = fit_direction("rise", t, np.exp(-t / 10.0))
    two = fit_direction("rise", t, 0.7 * np.exp(-t / 10.0) + 0.3 * np.exp(-t / 60.0))
    assert len(one.tau_ms) == 1 and one.tau_ms[0] == pytest.approx(10.0, rel=1e-3)
    assert len(two.tau_ms) == 2 and two.settle_ms == pytest.approx(60.0 * math.log(30.0), rel=0.02)

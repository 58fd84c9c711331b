"""A night on the rig, end to end on the tiny simulated rig: a line of progress without the bar,
resuming with a protocol that means the same, the exact command that continues a stopped run, and a
dataset from a mixed rig marked as such."""

from __future__ import annotations

import os
import signal

import h5py
import numpy as np
import pytest

from acquisition.acquire import acquire_command, layout_from_plan, resume_command, run_acquisition
from acquisition.plan import make_plan
from speckle_core.errors import UserError
from speckle_core.runfile import create_run
from speckle_lab.cli import run
from tests._tiny_sim import tiny_files


def test_without_the_bar_a_progress_line_names_pairs_rate_eta_and_block(tmp_path, capsys):
    protocol, rig = tiny_files(tmp_path)
    out = run_acquisition(protocol, tmp_path / "r.h5", rig, progress=False, log_every_s=0.01)
    assert out.exit_code == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("progress: ")]
    assert lines, "no progress line"
    last = lines[-1]
    assert "/12 pairs (" in last and "pairs/s" in last and "ETA" in last and "block " in last
    assert "progress: " in (tmp_path / "r.log").read_text()


def test_resume_with_a_protocol_differing_only_in_comments_and_layout_goes_on(tmp_path):
    protocol, rig = tiny_files(tmp_path)
    assert run_acquisition(protocol, tmp_path / "r.h5", rig).exit_code == 0
    text = protocol.read_text()
    protocol.write_text("# copied to the rig PC\n" + text.replace("count = 4", "count = 4  # all"))
    out = run_acquisition(protocol, tmp_path / "r.h5", rig, resume=True)
    assert out.exit_code == 0 and out.pairs_done == out.pairs_total


def test_resume_with_a_different_protocol_is_refused_naming_the_keys(tmp_path):
    protocol, rig = tiny_files(tmp_path)
    assert run_acquisition(protocol, tmp_path / "r.h5", rig).exit_code == 0
    protocol.write_text(protocol.read_text().replace("frames = 2", "frames = 3"))
    with pytest.raises(UserError) as e:
        run_acquisition(protocol, tmp_path / "r.h5", rig, resume=True)
    msg = str(e.value)
    assert "dark.frames: 2 → 3" in msg and "--protocol > protocol.toml" in msg


def test_the_stored_protocol_got_back_with_inspect_resumes_the_run(tmp_path, capsys):
    protocol, rig = tiny_files(tmp_path)
    assert run_acquisition(protocol, tmp_path / "r.h5", rig).exit_code == 0
    capsys.readouterr()
    assert run(["inspect", str(tmp_path / "r.h5"), "--protocol"]) == 0
    back = tmp_path / "back.toml"
    back.write_text(capsys.readouterr().out)
    assert back.read_text() == protocol.read_text()


def test_ctrl_c_names_the_exact_command_that_continues_the_run(tmp_path, capsys):
    protocol, rig = tiny_files(tmp_path)
    out = tmp_path / "r.h5"

    class CtrlC:
        def on_progress(self, done, total, label):
            if done == 2:
                os.kill(os.getpid(), signal.SIGINT)

    code = acquire_command(str(protocol), str(out), str(rig), resume=False, unattended=True, progress=False,
                           observers=(CtrlC(),))
    assert code == 130
    err = capsys.readouterr().err
    expected = resume_command(str(protocol), str(out), str(rig), unattended=True, progress=False)
    assert f"to continue, run: {expected}" in err
    assert expected == (f"speckle-lab acquire {protocol} --rig {rig} --out {out} --resume --unattended "
                        "--no-progress")
    argv = expected.split()[1:]
    assert run(argv) == 0  # the command printed does continue the run
    with h5py.File(out) as f:
        assert f["pairs/done"][...].all()


def test_the_resume_command_quotes_paths_with_spaces():
    assert resume_command("my protocol.toml", "run 1.h5", None) == \
        "speckle-lab acquire 'my protocol.toml' --out 'run 1.h5' --resume"


def test_a_dataset_from_a_mixed_rig_is_marked_as_such(tmp_path, capsys):
    protocol, _ = tiny_files(tmp_path)
    rig = tmp_path / "mixed.toml"
    rig.write_text('[slm]\nkind = "exulus"\nwindow_px = [64, 64]\n[camera]\nkind = "uc480"\n'
                   '[stage]\nkind = "sim"\n[changer]\nkind = "sim"\nslots = { 1 = "120", 2 = "1500" }\n')
    plan = make_plan(protocol, rig)
    n = plan.config.faces.count
    objects = (np.zeros((n, 64, 64), np.uint8), [f"o{i}" for i in range(n)], ["train"] * n, [])
    create_run(tmp_path / "r.h5", layout_from_plan(plan, objects, np.uint8))
    with h5py.File(tmp_path / "r.h5") as f:
        assert f.attrs["rig_kind"] == "mixed" and f.attrs["simulated_devices"] == '["stage", "changer"]'
    assert run(["inspect", str(tmp_path / "r.h5"), "--sheet", str(tmp_path / "s.png")]) == 0
    assert "MIXED: stage, changer simulated" in capsys.readouterr().out


def test_a_simulated_run_is_marked_simulated(tmp_path):
    protocol, rig = tiny_files(tmp_path)
    assert run_acquisition(protocol, tmp_path / "r.h5", rig).exit_code == 0
    with h5py.File(tmp_path / "r.h5") as f:
        assert f.attrs["rig_kind"] == "simulated" and f.attrs["simulated_devices"] == \
            '["slm", "camera", "stage", "changer"]'


def test_a_real_camera_with_a_simulated_stage_and_changer_runs_and_is_marked_mixed(tmp_path, monkeypatch):
    """The real SLM and camera are fakes at the driver boundary; the stage and changer are the
    simulated ones (nothing moves), so the frames follow only what the camera sees."""
    from types import SimpleNamespace

    from hardware.drivers.exulus import ExulusSLM
    from hardware.drivers.uc480_camera import UC480CameraDriver
    from hardware.sim import movers
    from tests._fake_rig import FakeCamera, FakeSLM

    bench = SimpleNamespace(slm=FakeSLM(window=(64, 64)))
    camera = FakeCamera(bench, roi=(48, 48))
    monkeypatch.setattr(ExulusSLM, "from_config", classmethod(lambda cls, cfg, lut: bench.slm))
    monkeypatch.setattr(UC480CameraDriver, "from_config", classmethod(lambda cls, cfg: camera))
    real_movers = movers.build_sim_movers

    def movers_seen_by_the_camera(cfg):
        bench.stage, bench.changer = real_movers(cfg)
        return bench.stage, bench.changer

    monkeypatch.setattr(movers, "build_sim_movers", movers_seen_by_the_camera)
    protocol, _ = tiny_files(tmp_path)
    protocol.write_text(protocol.read_text().replace("frames = 2", "frames = 0"))
    rig = tmp_path / "bring-up.toml"
    rig.write_text('[slm]\nkind = "exulus"\nwindow_px = [64, 64]\n[camera]\nkind = "uc480"\n'
                   '[stage]\nkind = "sim"\n[changer]\nkind = "sim"\nslots = { 1 = "120", 2 = "1500" }\n')
    out = run_acquisition(protocol, tmp_path / "r.h5", rig, unattended=True)
    assert out.exit_code == 0 and out.pairs_done == 12
    assert bench.changer.current() == "1500" and bench.stage.distance_mm() == 40.0
    with h5py.File(tmp_path / "r.h5") as f:
        assert f.attrs["rig_kind"] == "mixed" and f.attrs["simulated_devices"] == '["stage", "changer"]'


def test_the_progress_line_counts_this_sessions_pairs_and_notes_a_stall():
    from acquisition.progress import ProgressLog

    now = [100.0]
    plog = ProgressLog(total=1000, already=400, interval_s=60, emit=lambda s: None, clock=lambda: now[0])
    now[0] = 200.0
    plog.update(600, 1000, "block 3/12: diffuser 120 at 20 mm")  # 200 pairs in 100 s this session
    assert plog.line() == ("progress: 600/1000 pairs (60.0 %), 2.00 pairs/s, ETA 3 min 20 s, "
                           "block 3/12: diffuser 120 at 20 mm")
    now[0] = 290.0  # 90 s without a pair: a device retrying
    assert plog.line().endswith("(no pair finished for 1 min 30 s)")

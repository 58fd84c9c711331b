"""One entry point for a run, one translation of its settings (keeping the protocol's names), one rig load."""

from __future__ import annotations

import h5py

import hardware.rig
from acquisition.acquire import run_acquisition
from acquisition.plan import make_plan
from acquisition.settings import RunSettings
from hardware.rig import load_rig
from protocols import load_protocol
from tests._tiny_sim import tiny_files


def test_settings_are_the_protocols_tables_with_the_rigs_values_filled_in(tmp_path):
    protocol_path, rig_path = tiny_files(tmp_path)
    protocol, rig = load_protocol(protocol_path), load_rig(rig_path)
    settings = RunSettings.from_plan(make_plan(protocol, rig))
    model = protocol.model
    assert settings.retry == model.retry and settings.stability == model.stability
    assert settings.camera.auto_exposure == model.camera.auto_exposure  # target_level, not renamed
    assert model.camera.timeout_ms is None and settings.camera.timeout_ms == rig.config.camera.timeout_ms
    assert model.slm.gray_pi == "auto" and settings.slm.gray_pi == rig.lut().gray_pi
    assert settings.slm.settle_ms == max(model.slm.settle_ms, rig.config.slm.settle_ms)
    assert settings.target_px == tuple(model.faces.target_px)


def test_replace_changes_a_table_key_by_key():
    base = RunSettings()
    changed = base.replace(retry={"max_retries": 0}, pipelined=False)
    assert changed.retry.max_retries == 0 and changed.retry.backoff_s == base.retry.backoff_s
    assert not changed.pipelined and base.pipelined


def test_a_run_reads_its_rig_file_once(tmp_path, monkeypatch):
    protocol_path, rig_path = tiny_files(tmp_path)
    reads = []
    real = hardware.rig.load_toml_model
    monkeypatch.setattr(hardware.rig, "load_toml_model", lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    outcome = run_acquisition(protocol_path, tmp_path / "run.h5", rig_path, unattended=True)
    assert outcome.exit_code == 0, outcome.message
    assert reads == [rig_path]


def test_loaded_files_are_taken_as_they_are(tmp_path, monkeypatch):
    protocol_path, rig_path = tiny_files(tmp_path)
    protocol, rig = load_protocol(protocol_path), load_rig(rig_path)

    def no_reading(*args, **kwargs):
        raise AssertionError(f"read {args[0]} again")

    monkeypatch.setattr(hardware.rig, "load_toml_model", no_reading)
    outcome = run_acquisition(protocol, tmp_path / "run.h5", rig, unattended=True)
    assert outcome.exit_code == 0 and outcome.log_path == tmp_path / "run.log"
    with h5py.File(tmp_path / "run.h5") as f:
        assert f.attrs["rig"] == rig.text and f["pairs/done"][...].all()

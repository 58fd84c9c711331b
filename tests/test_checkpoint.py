"""Checkpoints load with weights_only=True; anything else is a one-line error, exit 2."""

import pickle

import pytest
import torch

from reconstruction.checkpoint import FORMAT, load_checkpoint, model_from_checkpoint, save_checkpoint
from speckle_core.errors import UserError
from speckle_lab.cli import run as cli_run


def test_checkpoint_loads_with_weights_only(trained):
    _, ckpt = trained
    state = torch.load(ckpt, weights_only=True)
    assert state["format"] == FORMAT and state["epoch"] == 1


def test_model_rebuilds_from_checkpoint(trained):
    _, ckpt = trained
    state = load_checkpoint(ckpt)
    model = model_from_checkpoint(state, ckpt)
    assert model.config == state["model_config"]
    assert torch.equal(model.state_dict()[next(iter(state["model"]))], next(iter(state["model"].values())))


def test_atomic_save_leaves_no_temporary_file(tmp_path):
    save_checkpoint({"x": torch.zeros(2)}, tmp_path / "a.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


@pytest.mark.parametrize("content", [b"\x00\x01random bytes" * 50, pickle.dumps({"a": 1})])
def test_non_torch_files_are_refused(tmp_path, content):
    p = tmp_path / "x.pt"
    p.write_bytes(content)
    with pytest.raises(UserError, match="x.pt: not a speckle-lab checkpoint"):
        load_checkpoint(p)


class Foreign:
    pass


def test_pickled_python_objects_are_refused(tmp_path):
    p = tmp_path / "foreign.pt"
    torch.save({"format": FORMAT, "obj": Foreign()}, p)
    with pytest.raises(UserError, match="refused by weights_only"):
        load_checkpoint(p)


def test_truncated_checkpoint_is_refused(tmp_path, trained):
    _, ckpt = trained
    p = tmp_path / "cut.pt"
    p.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(UserError, match="cut.pt: not a speckle-lab checkpoint"):
        load_checkpoint(p)


def test_wrong_keys_are_named(tmp_path):
    p = tmp_path / "keys.pt"
    torch.save({"format": FORMAT, "model": {}}, p)
    with pytest.raises(UserError, match="missing keys: model_config"):
        load_checkpoint(p)


def test_plain_state_dict_is_not_a_checkpoint(tmp_path):
    p = tmp_path / "sd.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), p)
    with pytest.raises(UserError, match="no format"):
        load_checkpoint(p)


def test_cli_exits_2_with_one_line_on_a_bad_checkpoint(tmp_path, trained, capsys):
    run, _ = trained
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    assert cli_run(["evaluate", str(bad), str(run), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "bad.pt: not a speckle-lab checkpoint" in err and err.count("\n") == 1

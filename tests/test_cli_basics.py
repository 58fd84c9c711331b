"""The console command's contract: fast help, no torch at import, exit codes."""

import subprocess
import sys

from speckle_lab.cli import run


def test_importing_the_cli_does_not_import_torch():
    code = "import sys, speckle_lab.cli; print('torch' in sys.modules, 'h5py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_help_lists_every_design_command(capsys):
    assert run(["--help"]) == 0
    text = capsys.readouterr().out
    for name in ("devices", "plan", "acquire", "inspect", "train", "evaluate", "predict", "demo"):
        assert name in text


def test_acquire_missing_protocol_exits_2_with_one_line(capsys):
    assert run(["acquire", "/no/such.toml", "--out", "x.h5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "/no/such.toml" in err


def test_unknown_option_is_a_usage_error(capsys):
    assert run(["acquire", "--bogus"]) == 2

"""Resuming without guesswork: protocols and rigs compared by meaning, the differing keys shown, and
the stored files got back with `inspect RUN.h5 --protocol` / `--rig`."""

import pytest

from hardware.rig import RigConfig
from protocols import shipped
from protocols.schema import ProtocolConfig
from speckle_core.meaning import describe, differences
from speckle_core.runfile import create_run
from speckle_lab.cli import run
from tests._run_factory import tiny_layout

QUICK = shipped("quick").read_text()


@pytest.mark.parametrize("edit", [
    lambda t: "# a comment added at the top\n" + t,
    lambda t: t.replace("count = 100", "count = 100  # all of them"),
    lambda t: t.replace("frames = 4", "frames = 4\n"),
    lambda t: t.replace("backoff_max_s = 1.0", "backoff_max_s = 1"),
    lambda t: t.replace('name = "quick demo"', "name = 'quick demo'"),
    lambda t: t.replace("[dark]\n", '[dark]\nper = "exposure"\n'),
], ids=["comment", "trailing-comment", "blank-line", "int-for-float", "quotes", "default-written-out"])
def test_protocols_meaning_the_same_compare_equal(edit):
    assert differences(ProtocolConfig, QUICK, edit(QUICK)) == []


def test_the_keys_that_differ_are_named_with_both_values():
    other = QUICK.replace("frames = 4", "frames = 6").replace('"1500"\ndistances_mm = [40]',
                                                              '"1500"\ndistances_mm = [30]')
    diffs = differences(ProtocolConfig, QUICK, other)
    assert diffs == ["blocks[4].distances_mm: [40.0] → [30.0]", "dark.frames: 4 → 6"]
    assert describe(diffs, limit=1) == "blocks[4].distances_mm: [40.0] → [30.0]; and 1 more"


def test_rigs_compare_by_meaning_too():
    rig = '[camera]\nkind = "sim"\n[changer]\nslots = { 1 = "120", 2 = "600" }\n'
    assert differences(RigConfig, rig, "# my rig\n" + rig.replace('"sim"', "'sim'")) == []
    assert differences(RigConfig, rig, rig.replace('2 = "600"', '2 = "1500"')) == [
        'changer.slots.2: "600" → "1500"']


def test_a_text_that_does_not_validate_is_a_value_error_naming_the_key():
    with pytest.raises(ValueError, match="dark.frames"):
        differences(ProtocolConfig, QUICK, QUICK.replace("frames = 4", "frames = -4"))


@pytest.mark.parametrize("option, attr", [("--protocol", "protocol_text"), ("--rig", "rig_text")])
def test_inspect_gives_the_stored_file_back_byte_for_byte(tmp_path, capsysbinary, option, attr):
    texts = {"protocol_text": "# créé pour l'essai\n" + QUICK, "rig_text": '# rig\n[camera]\nkind = "sim"\n'}
    path = tmp_path / "run.h5"
    create_run(path, tiny_layout(**texts))
    assert run(["inspect", str(path), option]) == 0
    out = capsysbinary.readouterr().out
    assert out == texts[attr].encode("utf-8")
    assert not (tmp_path / "run.contact.png").exists()  # only the file, nothing else

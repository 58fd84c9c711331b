"""The bad-input corpus (issue 8): hostile or broken files given to the console command.

Every case runs ``speckle-lab`` in-process (``speckle_lab.cli.run``) and must end with exit code 2,
exactly one line on stderr naming what is wrong, and never a traceback (nor a crash log, which is
what the CLI writes for an unexpected exception). The corpus files are made in ``tmp_path`` by the
small builders below, so each case reads as: what is given, to which command.

Groups: protocol files, rig files, face sources (images and archives), run files (HDF5) given to
``inspect``, ``train``, ``evaluate`` and ``acquire --resume``, and checkpoints (including a pickle
whose ``__reduce__`` would write a marker file: the marker must never appear).
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tomli_w

from speckle_lab.cli import run

# -- a small valid protocol, mutated by the cases ---------------------------------------------------


def tiny_protocol(**sections) -> dict:
    """A valid protocol (3 embedded faces, 32×32 patterns) as a dict; ``sections`` override tables."""
    doc = {
        "name": "tiny",
        "faces": {"source": "embedded", "count": 3, "seed": 0, "holdout": 1, "target_px": [32, 32]},
        "slm": {"gray_pi": "auto", "settle_ms": 0, "stroke_mode": "full-wave"},
        "camera": {"roi_px": [32, 32], "exposure_us": 2000, "average": 1},
        "blocks": [{"diffuser": "120", "distances_mm": [0, 20], "role": "train"}],
        "dark": {"frames": 1},
        "stability": {"reference_every": 0},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return doc


TINY_RIG = {"name": "tiny sim", "slm": {"kind": "sim", "window_px": [32, 32]}, "camera": {"kind": "sim"},
            "stage": {"kind": "sim"}, "changer": {"kind": "sim"}, "sim": {"seed": 0}}


def write(path: Path, content: str | bytes | dict) -> Path:
    if isinstance(content, dict):
        content = tomli_w.dumps(content)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def tiny_rig(tmp: Path) -> Path:
    return write(tmp / "rig.toml", TINY_RIG)


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Path], list[str]]  # builds the corpus file(s) in tmp_path, returns the argv
    names: str | None = None  # a word the one-line message must contain (the file, key or value)


def plan_of(text: str | bytes | dict, names: str | None = None, case_id: str = "") -> Case:
    """A protocol (TOML text, raw bytes or a dict) given to ``speckle-lab plan``."""

    def make(tmp: Path) -> list[str]:
        return ["plan", str(write(tmp / "p.toml", text)), "--rig", str(tiny_rig(tmp))]

    return Case(case_id, make, names)


def acquire_of(text: str | bytes | dict, names: str | None = None, case_id: str = "") -> Case:
    """A protocol given to ``speckle-lab acquire`` (checks ``plan`` lets through, e.g. missing faces)."""

    def make(tmp: Path) -> list[str]:
        return ["acquire", str(write(tmp / "p.toml", text)), "--rig", str(tiny_rig(tmp)),
                "--out", str(tmp / "run.h5"), "--unattended", "--no-progress"]

    return Case(case_id, make, names)


def rig_of(text: str | bytes | dict, names: str | None = None, case_id: str = "") -> Case:
    """A rig file given to ``speckle-lab plan`` with a valid protocol."""

    def make(tmp: Path) -> list[str]:
        protocol = write(tmp / "p.toml", tiny_protocol())
        return ["plan", str(protocol), "--rig", str(write(tmp / "r.toml", text))]

    return Case(case_id, make, names)


def nested_tables(depth: int) -> str:
    """A valid protocol followed by one table nested ``depth`` deep (an unknown key at the top)."""
    return tomli_w.dumps(tiny_protocol()) + "[" + ".".join(f"k{i}" for i in range(depth)) + "]\nx = 1\n"


PROTOCOL_CASES = [
    plan_of(tiny_protocol(faces={"count": "many"}), "faces.count", "wrong-type-count"),
    plan_of(tiny_protocol(camera={"exposure_us": [1, 2]}), "camera.exposure_us", "wrong-type-exposure"),
    plan_of(tiny_protocol(blocks=5), "blocks", "wrong-type-blocks"),
    plan_of(tiny_protocol(blocks={"diffuser": "120"}), "blocks", "blocks-table-not-array"),
    plan_of(tiny_protocol(faces={"count": True, "holdout": 0}), "faces.count", "bool-as-count"),
    plan_of(tiny_protocol(faces={"count": "3"}), "faces.count", "numeric-string-as-count"),
    plan_of(tiny_protocol(slm={"settle_ms": True}), "slm.settle_ms", "bool-as-settle-time"),
    plan_of(tiny_protocol(blocks=[{"diffuser": "120", "distances_mm": [True]}]), "distances_mm",
            "bool-as-distance"),
    plan_of({**tiny_protocol(), "blocs": []}, "blocs", "unknown-top-level-key"),
    plan_of(tiny_protocol(camera={"exposure": 100}), "camera.exposure", "unknown-nested-key"),
    plan_of(tiny_protocol(camera={"exposure_us": -5}), "camera.exposure_us", "negative-exposure"),
    plan_of(tiny_protocol(slm={"settle_ms": 1e12}), "slm.settle_ms", "absurd-settle"),
    plan_of(tiny_protocol(faces={"count": 10**12}), "faces.count", "huge-face-count"),
    plan_of(tiny_protocol(faces={"count": 20000, "holdout": 0},
                          blocks=[{"diffuser": "120", "distances_mm": list(range(100)), "repeats": 100}]),
            "pairs", "huge-pair-count"),
    plan_of("name = 't'\n[faces]\ncount = 99999999999999999999999\n", "count", "integer-beyond-64-bit"),
    plan_of("[slm]\nsettle_ms = nan\n[[blocks]]\ndiffuser = '120'\ndistances_mm = [0]\n",
            "settle_ms", "nan-settle"),
    plan_of("[camera]\nexposure_us = inf\n[[blocks]]\ndiffuser = '120'\ndistances_mm = [0]\n",
            "exposure_us", "infinite-exposure"),
    plan_of("[[blocks]]\ndiffuser = '120'\ndistances_mm = [0, nan]\n", "distances_mm", "nan-distance"),
    plan_of(tiny_protocol(blocks=[]), "blocks", "no-blocks"),
    plan_of(tiny_protocol(faces={"holdout": 3}), "holdout", "holdout-not-below-count"),
    plan_of(tiny_protocol(blocks=[{"diffuser": "999", "distances_mm": [0]}]), "999", "diffuser-not-on-rig"),
    plan_of(tiny_protocol(blocks=[{"diffuser": "120", "distances_mm": [900]}]), "900",
            "distance-beyond-travel"),
    plan_of(tiny_protocol(camera={"roi_px": [5000, 5000]}), "roi", "roi-larger-than-sensor"),
    plan_of(tiny_protocol(faces={"count": 500, "holdout": 0}), "500", "more-faces-than-embedded"),
    acquire_of(tiny_protocol(faces={"source": "no/such/lfw"}), "no/such/lfw", "missing-face-source"),
    plan_of("", "blocks", "empty-file"),
    plan_of("name = 'x'\nname = 'y'\n", "p.toml", "duplicate-key"),
    plan_of("name = \n", "p.toml", "not-toml"),
    plan_of(tomli_w.dumps(tiny_protocol()).encode("utf-16"), "p.toml", "utf-16"),
    plan_of("name = 'caf\xe9'\n".encode("latin-1"), "p.toml", "latin-1"),
    plan_of(bytes(range(256)) * 16, "p.toml", "binary"),
    plan_of(tomli_w.dumps(tiny_protocol()).replace("tiny", "ti\x00ny"), "p.toml", "nul-byte-in-string"),
    plan_of(b"\x00" * 4096, "p.toml", "all-nul-bytes"),
    plan_of("# " + "x" * 10_000_000 + "\n", "p.toml", "ten-megabytes"),
    plan_of("a = " + "[" * 20_000 + "]" * 20_000 + "\n", "p.toml", "deeply-nested-arrays"),
    plan_of("a = " + "{b = " * 2_000 + "1" + "}" * 2_000 + "\n", "p.toml", "deeply-nested-inline-tables"),
    plan_of(nested_tables(5_000), "k0", "deeply-nested-tables"),
    Case("directory", lambda tmp: ["plan", str(tmp), "--rig", str(tiny_rig(tmp))], "directory"),
    Case("missing-file", lambda tmp: ["plan", str(tmp / "nope.toml")], "nope.toml"),
    Case("dangling-symlink", lambda tmp: ["plan", _symlink(tmp / "l.toml", tmp / "gone")], "l.toml"),
    Case("symlink-loop", lambda tmp: ["plan", _loop(tmp)], "loop.toml"),
    Case("unreadable", lambda tmp: ["plan", _unreadable(tmp)], "secret.toml"),
]


def _symlink(link: Path, target: Path) -> str:
    link.symlink_to(target)
    return str(link)


def _loop(tmp: Path) -> str:
    (tmp / "loop.toml").symlink_to(tmp / "loop2.toml")
    (tmp / "loop2.toml").symlink_to(tmp / "loop.toml")
    return str(tmp / "loop.toml")


def _unreadable(tmp: Path) -> str:
    p = write(tmp / "secret.toml", tiny_protocol())
    p.chmod(0)
    if os.access(p, os.R_OK):  # root reads anything: use a file that cannot be opened at all
        p.chmod(0o644)
        p.unlink()
        p.mkdir()
        (p / "x").write_text("")
    return str(p)


RIG_CASES = [
    rig_of({**TINY_RIG, "camera": {"kind": "sim", "exposure": 1}}, "camera.exposure", "rig-unknown-key"),
    rig_of({**TINY_RIG, "cam": {}}, "cam", "rig-unknown-section"),
    rig_of({**TINY_RIG, "sim": {"seed": "zero"}}, "sim.seed", "rig-wrong-type"),
    rig_of({**TINY_RIG, "sim": {"seed": -1}}, "sim.seed", "rig-negative-seed"),
    rig_of({**TINY_RIG, "camera": {"kind": "sim", "timeout_ms": -1}}, "camera.timeout_ms",
           "rig-negative-timeout"),
    rig_of({**TINY_RIG, "camera": {"kind": "sim", "pixel_um": 0}}, "camera.pixel_um", "rig-zero-pixel"),
    rig_of({**TINY_RIG, "camera": {"kind": "sim", "sensor_px": [0, -5]}}, "sensor_px", "rig-negative-sensor"),
    rig_of({**TINY_RIG, "camera": {"kind": "sim", "sensor_px": [10**6, 10**6]}}, "sensor_px",
           "rig-absurd-sensor"),
    rig_of({**TINY_RIG, "slm": {"kind": "sim", "window_px": [10**6, 10**6]}}, "window_px",
           "rig-absurd-window"),
    rig_of({**TINY_RIG, "camera": {"kind": "uc480"}}, "real", "rig-half-simulated"),
    rig_of({**TINY_RIG, "changer": {"kind": "sim", "slots": {"0": "120"}}}, "slots", "rig-bad-slot"),
    rig_of({**TINY_RIG, "changer": {"kind": "sim", "slots": {"1": "120", "2": "120"}}}, "slots",
           "rig-duplicate-diffuser"),
    rig_of({**TINY_RIG, "sim": {"faults": {"camera_timeout": 2.0}}}, "camera_timeout",
           "rig-fault-rate-above-1"),
    rig_of({**TINY_RIG, "sim": {"diffusers": {"120": {"rms_height_um": -1, "corr_length_um": 10}}}},
           "rms_height_um", "rig-negative-roughness"),
    rig_of({**TINY_RIG, "slm": {"kind": "sim", "window_px": [32, 32], "lut_file": "nope.csv"}}, "nope.csv",
           "rig-missing-lut"),
    rig_of("[slm]\nkind = 'sim'\n".encode("utf-16"), "r.toml", "rig-utf-16"),
    rig_of(b"\x89HDF\r\n\x1a\n" + bytes(2000), "r.toml", "rig-binary"),
    rig_of("[slm\n", "r.toml", "rig-not-toml"),
]


def _diffuser_without_model(tmp: Path) -> list[str]:
    """A simulated rig whose wheel holds a diffuser the simulation has no phase-screen model for."""
    proto = tiny_protocol(blocks=[{"diffuser": "mystery", "distances_mm": [0]}])
    rig = {**TINY_RIG, "changer": {"kind": "sim", "slots": {"1": "mystery"}}}
    return ["acquire", str(write(tmp / "p.toml", proto)), "--rig", str(write(tmp / "r.toml", rig)),
            "--out", str(tmp / "run.h5"), "--unattended", "--no-progress"]


def _bad_lut(tmp: Path) -> list[str]:
    write(tmp / "lut.csv", "gray,phase\n0,0\n1,abc\n")
    rig = {**TINY_RIG, "slm": {"kind": "sim", "window_px": [32, 32], "lut_file": "lut.csv"}}
    return ["plan", str(write(tmp / "p.toml", tiny_protocol())), "--rig", str(write(tmp / "r.toml", rig))]


RIG_CASES += [Case("rig-malformed-lut", _bad_lut, "lut.csv"),
              Case("rig-diffuser-without-model", _diffuser_without_model, "mystery")]


# -- face sources: LFW folders and archives, given to `acquire` ------------------------------------


def jpeg_bytes(seed: int = 0, size: int = 24) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def png_bomb() -> bytes:
    """A tiny PNG that claims 30000×30000 pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + \
        chunk(b"IEND", b"")


def lfw_folder(tmp: Path, images: dict[str, bytes]) -> Path:
    root = tmp / "lfw"
    for name, data in images.items():
        person = name.rsplit("_", 1)[0]
        (root / person).mkdir(parents=True, exist_ok=True)
        (root / person / f"{name}.jpg").write_bytes(data)
    return root


def add_member(tar: tarfile.TarFile, name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE,
               link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def lfw_tgz(tmp: Path, hostile: list[tuple[str, bytes, bytes, str]] = (), n_good: int = 4) -> Path:
    """lfw.tgz with ``n_good`` faces, then the hostile members (name, data, type, linkname)."""
    path = tmp / "lfw.tgz"
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        for i in range(n_good):
            add_member(tar, f"lfw/Person_{i}/Person_{i}_0001.jpg", jpeg_bytes(i))
        for name, data, kind, link in hostile:
            add_member(tar, name, data, kind, link)
    return path


def acquire_faces(make_source: Callable[[Path], Path], count: int = 4) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        src = make_source(tmp)
        proto = tiny_protocol(faces={"source": str(src), "count": count, "holdout": 1})
        return ["acquire", str(write(tmp / "p.toml", proto)), "--rig", str(tiny_rig(tmp)),
                "--out", str(tmp / "run.h5"), "--unattended", "--no-progress"]

    return make


def _traversal(tmp: Path) -> Path:
    return lfw_tgz(tmp, [("lfw/../../evil_Person/evil_Person_0001.jpg", jpeg_bytes(9), tarfile.REGTYPE, "")])


def _absolute(tmp: Path) -> Path:
    member = str(tmp / "abs_Person" / "abs_Person_0001.jpg")
    return lfw_tgz(tmp, [(member, jpeg_bytes(9), tarfile.REGTYPE, "")])


def _symlink_member(tmp: Path) -> Path:
    return lfw_tgz(tmp, [("lfw/Link/Link_0001.jpg", b"", tarfile.SYMTYPE, "/etc/passwd")])


def _hardlink_member(tmp: Path) -> Path:
    return lfw_tgz(tmp, [("lfw/Hard/Hard_0001.jpg", b"", tarfile.LNKTYPE, "/etc/passwd")])


def _device_member(tmp: Path) -> Path:
    return lfw_tgz(tmp, [("lfw/Dev/Dev_0001.jpg", b"", tarfile.CHRTYPE, "")])


def _truncated_tgz(tmp: Path) -> Path:
    full = lfw_tgz(tmp, n_good=8)
    data = full.read_bytes()
    full.write_bytes(data[: len(data) // 2])
    return full


def _not_gzip(tmp: Path) -> Path:
    return write(tmp / "lfw.tgz", b"this is not an archive\n" * 100)


def _gzip_not_tar(tmp: Path) -> Path:
    return write(tmp / "lfw.tgz", gzip.compress(b"plain text, not a tar archive\n" * 100))


def _empty_folder(tmp: Path) -> Path:
    (tmp / "lfw").mkdir()
    return tmp / "lfw"


def _corrupt_jpegs(tmp: Path) -> Path:  # 3 good faces, 1 corrupt: fewer readable faces than count = 4
    good = {f"P{i}_000{i}": jpeg_bytes(i) for i in range(3)}
    return lfw_folder(tmp, {**good, "Bad_0001": jpeg_bytes(7)[:60]})


def _bomb(tmp: Path) -> Path:  # 3 good faces and a decompression bomb; count = 4
    good = {f"P{i}_000{i}": jpeg_bytes(i) for i in range(3)}
    return lfw_folder(tmp, {**good, "Bomb_0001": png_bomb()})


FACE_CASES = [
    Case("tgz-path-traversal", acquire_faces(_traversal), "evil_Person"),
    Case("tgz-absolute-path", acquire_faces(_absolute), "abs_Person"),
    Case("tgz-symlink-member", acquire_faces(_symlink_member), "Link"),
    Case("tgz-hardlink-member", acquire_faces(_hardlink_member), "Hard"),
    Case("tgz-device-member", acquire_faces(_device_member), "Dev"),
    Case("tgz-truncated", acquire_faces(_truncated_tgz), "lfw.tgz"),
    Case("tgz-not-gzip", acquire_faces(_not_gzip), "lfw.tgz"),
    Case("tgz-gzip-not-tar", acquire_faces(_gzip_not_tar), "lfw.tgz"),
    Case("folder-without-images", acquire_faces(_empty_folder), "lfw"),
    Case("folder-corrupt-jpeg-too-few-faces", acquire_faces(_corrupt_jpegs), "4"),
    Case("folder-decompression-bomb-too-few-faces", acquire_faces(_bomb), "4"),
]


# -- run files (HDF5) -----------------------------------------------------------------------------------


def valid_run(tmp: Path, name: str = "good.h5") -> Path:
    from speckle_core.runfile import create_run
    from tests._run_factory import tiny_layout

    path = tmp / name
    create_run(path, tiny_layout(frame_shape=(16, 16)))
    return path


def foreign_h5(tmp: Path) -> Path:
    import h5py

    path = tmp / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(10)
        f.attrs["format"] = "someone-else/3"
    return path


def format_only_h5(tmp: Path) -> Path:
    import h5py

    from speckle_core.runfile import FORMAT

    path = tmp / "hollow.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT
    return path


def truncated_h5(tmp: Path) -> Path:
    good = valid_run(tmp, "cut.h5")
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 3])
    return good


def tampered_h5(tmp: Path) -> Path:
    """Our format, but /pairs/object_index points outside /objects."""
    import h5py

    good = valid_run(tmp, "tampered.h5")
    with h5py.File(good, "r+") as f:
        f["pairs/object_index"][0] = 10_000
    return good


def text_file(tmp: Path) -> Path:
    return write(tmp / "notes.h5", "these are not the droids\n")


def empty_file(tmp: Path) -> Path:
    return write(tmp / "empty.h5", b"")


def a_directory(tmp: Path) -> Path:
    (tmp / "dir.h5").mkdir()
    return tmp / "dir.h5"


RUN_FILES = {"foreign": foreign_h5, "format-only": format_only_h5, "truncated": truncated_h5,
             "tampered-index": tampered_h5, "text": text_file, "empty": empty_file, "directory": a_directory}


def inspect_of(make_run) -> Callable[[Path], list[str]]:
    return lambda tmp: ["inspect", str(make_run(tmp)), "--sheet", str(tmp / "sheet.png")]


def train_of(make_run) -> Callable[[Path], list[str]]:
    return lambda tmp: ["train", str(make_run(tmp)), "--out", str(tmp / "train"), "--epochs", "1",
                        "--image-size", "16", "--model", "unet", "--model-arg", "base_channels=2",
                        "--device", "cpu", "--quiet"]


def resume_of(make_run) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        return ["acquire", str(write(tmp / "p.toml", tiny_protocol())), "--rig", str(tiny_rig(tmp)),
                "--out", str(make_run(tmp)), "--resume", "--unattended", "--no-progress"]

    return make


def evaluate_of(make_run) -> Callable[[Path], list[str]]:
    return lambda tmp: ["evaluate", str(good_checkpoint(tmp)), str(make_run(tmp)), "--out", str(tmp / "ev"),
                        "--device", "cpu"]


RUN_CASES = [
    Case(f"{cmd}-{kind}", wrap(make), None)
    for kind, make in RUN_FILES.items()
    for cmd, wrap in (("inspect", inspect_of), ("train", train_of), ("evaluate", evaluate_of),
                      ("resume", resume_of))
    if not (cmd == "evaluate" and kind in ("empty", "directory"))  # same code path as text / train
]


# -- checkpoints ------------------------------------------------------------------------------------------

MARKER = "PWNED_MARKER"


class Payload:
    """Unpickling this runs ``open(marker, 'w')``: a checkpoint must never be unpickled freely."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def tiny_state() -> dict:
    from reconstruction.models import build_model

    model = build_model("unet", 16, base_channels=2)
    return {"model_config": dict(model.config), "model": model.state_dict(), "epoch": 1,
            "history": {"train_loss": [1.0]}, "train_config": {"test_objects": []}}


def good_checkpoint(tmp: Path) -> Path:
    from reconstruction.checkpoint import save_checkpoint

    path = tmp / "good.pt"
    if not path.exists():
        save_checkpoint(tiny_state(), path)
    return path


def torch_file(tmp: Path, obj, name: str = "c.pt") -> Path:
    import torch

    path = tmp / name
    torch.save(obj, path)
    return path


def _random_bytes(tmp):
    return write(tmp / "c.pt", np.random.default_rng(0).bytes(5000))


def _plain_pickle_payload(tmp):
    return write(tmp / "c.pt", pickle.dumps({"model": Payload(tmp / MARKER)}))


def _torch_zip_payload(tmp):
    return torch_file(tmp, {"format": "speckle-lab-checkpoint/1", "model": Payload(tmp / MARKER)})


def _wrong_keys(tmp):
    import torch

    return torch_file(tmp, {"weights": torch.zeros(3)})


def _no_format(tmp):
    state = tiny_state()
    return torch_file(tmp, state)


def _bad_model_name(tmp):
    from reconstruction.checkpoint import FORMAT

    state = {**tiny_state(), "format": FORMAT}
    state["model_config"] = {**state["model_config"], "name": "evil-net"}
    return torch_file(tmp, state)


def _bad_model_args(tmp):
    from reconstruction.checkpoint import FORMAT

    state = {**tiny_state(), "format": FORMAT}
    state["model_config"] = {**state["model_config"], "rm_rf": True}
    return torch_file(tmp, state)


def _absurd_image_size(tmp):
    from reconstruction.checkpoint import FORMAT

    state = {**tiny_state(), "format": FORMAT}
    state["model_config"] = {**state["model_config"], "image_size": 2**40}
    return torch_file(tmp, state)


def _mismatched_weights(tmp):
    import torch

    from reconstruction.checkpoint import FORMAT

    state = {**tiny_state(), "format": FORMAT}
    state["model"] = {k: torch.zeros(1) for k in state["model"]}
    return torch_file(tmp, state)


def _truncated_checkpoint(tmp):
    good = good_checkpoint(tmp)
    data = good.read_bytes()
    return write(tmp / "c.pt", data[: len(data) // 2])


def _zip_of_garbage(tmp):
    import zipfile

    path = tmp / "c.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x05garbage")
    return path


CHECKPOINTS = {"random-bytes": _random_bytes, "pickle-reduce-payload": _plain_pickle_payload,
               "torch-zip-reduce-payload": _torch_zip_payload, "wrong-keys": _wrong_keys,
               "no-format": _no_format, "unknown-model": _bad_model_name, "extra-model-arg": _bad_model_args,
               "absurd-image-size": _absurd_image_size, "mismatched-weights": _mismatched_weights,
               "truncated": _truncated_checkpoint, "zip-of-garbage": _zip_of_garbage,
               "empty": lambda tmp: write(tmp / "c.pt", b""), "directory": a_directory}


def _frame(tmp: Path) -> Path:
    path = tmp / "frame.npy"
    np.save(path, np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    return path


CHECKPOINT_CASES = [
    Case(f"{cmd}-checkpoint-{kind}", make, None)
    for kind, build in CHECKPOINTS.items()
    for cmd, make in (
        ("evaluate", lambda tmp, b=build: ["evaluate", str(b(tmp)), str(valid_run(tmp)), "--out",
                                           str(tmp / "ev"), "--device", "cpu"]),
        ("predict", lambda tmp, b=build: ["predict", str(b(tmp)), str(_frame(tmp)), "--out", str(tmp / "pr"),
                                          "--device", "cpu"]),
    )
]


def _predict_input(make_input) -> Callable[[Path], list[str]]:
    return lambda tmp: ["predict", str(good_checkpoint(tmp)), str(make_input(tmp)), "--out", str(tmp / "pr"),
                        "--device", "cpu"]


PREDICT_INPUT_CASES = [
    Case("predict-corrupt-png",
         _predict_input(lambda tmp: write(tmp / "x.png", b"\x89PNG\r\n\x1a\n" + bytes(50))), "x.png"),
    Case("predict-png-bomb", _predict_input(lambda tmp: write(tmp / "bomb.png", png_bomb())), "bomb.png"),
    Case("predict-pickled-npy", _predict_input(
        lambda tmp: (np.save(tmp / "obj.npy", np.array([Payload(tmp / MARKER)], dtype=object),
                             allow_pickle=True), tmp / "obj.npy")[1]), "obj.npy"),
    Case("predict-3d-npy", _predict_input(
        lambda tmp: (np.save(tmp / "cube.npy", np.zeros((4, 64, 64))), tmp / "cube.npy")[1]), "cube.npy"),
    Case("predict-run-rows-out-of-range", lambda tmp: ["predict", str(good_checkpoint(tmp)),
                                                       f"{valid_run(tmp)}:0-99999", "--device", "cpu",
                                                       "--out", str(tmp / "pr")], "99999"),
    Case("predict-foreign-h5-rows", lambda tmp: ["predict", str(good_checkpoint(tmp)), f"{foreign_h5(tmp)}:0",
                                                 "--device", "cpu", "--out", str(tmp / "pr")], "foreign.h5"),
]


ALL_CASES = PROTOCOL_CASES + RIG_CASES + FACE_CASES + RUN_CASES + CHECKPOINT_CASES + PREDICT_INPUT_CASES


@pytest.fixture(autouse=True)
def _crash_log(tmp_path, monkeypatch):
    """Points the CLI's crash log into tmp_path: a case that writes one has crashed."""
    log = tmp_path / "crash.log"
    monkeypatch.setenv("SPECKLE_LAB_CRASH_LOG", str(log))
    monkeypatch.delenv("SPECKLE_LAB_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    return log


def run_case(case: Case, tmp_path: Path, capsys) -> tuple[int, str, str]:
    work = tmp_path / "case"
    work.mkdir()
    argv = case.make(work)
    capsys.readouterr()
    code = run(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_corpus_covers_every_issue_8_group():
    ids = {c.id for c in ALL_CASES}
    assert len(ids) == len(ALL_CASES), "duplicate case ids"
    assert len(ALL_CASES) >= 100
    for needed in ("utf-16", "binary", "nul-byte-in-string", "directory", "empty-file", "ten-megabytes",
                   "deeply-nested-arrays", "tgz-path-traversal", "tgz-absolute-path", "tgz-symlink-member",
                   "tgz-hardlink-member", "tgz-truncated", "inspect-foreign", "train-truncated",
                   "evaluate-text", "resume-foreign", "evaluate-checkpoint-pickle-reduce-payload",
                   "predict-checkpoint-truncated", "evaluate-checkpoint-wrong-keys"):
        assert needed in ids, needed


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.id for c in ALL_CASES])
def test_bad_input_exits_2_with_one_line_and_no_traceback(case, tmp_path, capsys, _crash_log):
    code, out, err = run_case(case, tmp_path, capsys)
    lines = err.strip().splitlines()
    assert "Traceback" not in out + err
    assert not _crash_log.exists(), f"crashed: {err.strip()}"
    assert code == 2, f"exit {code}: {err.strip()}"
    assert len(lines) == 1, err
    assert lines[0].startswith("speckle-lab: error: ")
    if case.names:
        assert case.names.lower() in lines[0].lower(), lines[0]


@pytest.fixture(autouse=True)
def _nothing_escapes(tmp_path):
    """After each case: no hostile payload ran, and no archive member was written anywhere."""
    yield
    root = tmp_path.parent.parent  # pytest's base temp: where a `../..` member would land
    for pattern in (MARKER, "evil_Person*", "abs_Person*"):
        assert not list(root.rglob(pattern)), f"{pattern} appeared on disk"


SPECIAL_FILES = {"character-device": lambda tmp: "/dev/zero",  # endless bytes: must not be read whole
                 "fifo": lambda tmp: (os.mkfifo(tmp / "pipe.toml"), str(tmp / "pipe.toml"))[1]}  # blocks


@pytest.mark.parametrize("kind", list(SPECIAL_FILES))
def test_a_special_file_as_protocol_is_refused_without_reading_it(kind, tmp_path):
    """In a child process with a memory cap and a time limit: an endless or blocking file must be
    refused (exit 2, one line), not read until memory runs out or waited on forever."""
    import resource
    import subprocess
    import sys

    path = SPECIAL_FILES[kind](tmp_path)

    def cap_memory():
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**29, 3 * 2**29))

    env = {**os.environ, "SPECKLE_LAB_CRASH_LOG": str(tmp_path / "crash.log")}
    try:
        res = subprocess.run([sys.executable, "-m", "speckle_lab.cli", "plan", path], capture_output=True,
                             text=True, timeout=10, preexec_fn=cap_memory, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{kind}: still reading {path} after 10 s")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert path in lines[0]


def test_a_corrupt_jpeg_among_enough_good_faces_is_skipped_and_counted_in_the_file(tmp_path, capsys):
    """Not an error: the run goes on with the readable faces and records the one it skipped."""
    import h5py

    src = lfw_folder(tmp_path, {**{f"P{i}_000{i}": jpeg_bytes(i) for i in range(3)},
                                "Bad_0001": jpeg_bytes(7)[:60]})
    proto = tiny_protocol(faces={"source": str(src), "count": 3, "holdout": 1})
    out = tmp_path / "run.h5"
    code = run(["acquire", str(write(tmp_path / "p.toml", proto)), "--rig", str(tiny_rig(tmp_path)),
                "--out", str(out), "--unattended", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    with h5py.File(out, "r") as f:
        assert f.attrs["skipped_faces"] == 1
        skipped = [s.decode() if isinstance(s, bytes) else s for s in f["objects/skipped"][...]]
        names = [s.decode() if isinstance(s, bytes) else s for s in f["objects/name"][...]]
    assert len(skipped) == 1 and "Bad_0001" in skipped[0]
    assert not any("Bad" in n for n in names)

"""A lab's own objects: flat folders and archives of PNG/JPEG/TIFF at any bit depth, and the holdout
split by person or by name. Every image is built here from the embedded faces."""

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from acquisition.binarise import binarise
from acquisition.faces import load_faces, split_holdout
from acquisition.sources import FolderSource, ZipSource, decode_gray, open_source
from protocols.schema import FacesConfig
from speckle_core.errors import UserError
from speckle_core.person import person_of


@pytest.fixture(scope="module")
def faces():
    from skimage.data import lfw_subset

    return np.asarray(lfw_subset()[:6], dtype=np.float64)


def encode(gray01: np.ndarray, fmt: str, bits: int = 8) -> bytes:
    """``gray01`` as an image file: 8-bit, 16-bit or 32-bit float ("F")."""
    if bits == 16:
        arr = np.round(gray01 * 65535).astype(np.uint16)
    elif bits == 32:
        arr = gray01.astype(np.float32)
    else:
        arr = np.round(gray01 * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


def flat_folder(root: Path, faces, names=None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    fmts = [("PNG", ".png", 8), ("JPEG", ".jpg", 8), ("TIFF", ".tif", 16), ("PNG", ".png", 16),
            ("TIFF", ".tiff", 32), ("PNG", ".png", 8)]
    for i, face in enumerate(faces):
        fmt, suffix, bits = fmts[i % len(fmts)]
        name = names[i] if names else f"digit_{i}"
        (root / f"{name}{suffix}").write_bytes(encode(face, fmt, bits))
    return root


def test_a_flat_folder_of_mixed_formats_lists_every_image_by_its_stem(tmp_path, faces):
    src = open_source(str(flat_folder(tmp_path / "mine", faces)), tmp_path)
    assert isinstance(src, FolderSource)
    assert src.names() == [f"digit_{i}" for i in range(6)]
    got = load_faces(src, 6, 0, seed=0)
    assert got.skipped == [] and all(img.shape == (25, 25) for img in got.images)


@pytest.mark.parametrize("fmt, bits", [("PNG", 16), ("TIFF", 16), ("TIFF", 32), ("TIFF", 8)])
def test_every_bit_depth_decodes_to_the_same_gray_scale(faces, fmt, bits):
    eight = decode_gray(encode(faces[0], "PNG", 8))
    other = decode_gray(encode(faces[0], fmt, bits))
    assert other.dtype == np.float32 and other.min() >= 0.0 and other.max() <= 1.0
    np.testing.assert_allclose(other, eight, atol=0.5 / 255 + 1e-6)


def test_a_16_bit_image_binarises_like_its_8_bit_copy(faces):
    cfg = FacesConfig(target_px=(64, 64))
    eight = binarise(decode_gray(encode(faces[1], "PNG", 8)), cfg)
    sixteen = binarise(decode_gray(encode(faces[1], "TIFF", 16)), cfg)
    assert np.mean(eight != sixteen) < 0.01  # Otsu on values 1/65535 apart from the 8-bit ones


def test_a_large_image_is_read_at_its_size(tmp_path):
    big = np.random.default_rng(0).random((1200, 1600))
    path = tmp_path / "pattern.tif"
    path.write_bytes(encode(big, "TIFF", 16))
    (name, img, why), = FolderSource(tmp_path).read(["pattern"])
    assert why == "" and img.shape == (1200, 1600)


def test_a_zip_of_images_is_read_without_extracting(tmp_path, faces, monkeypatch):
    path = tmp_path / "letters.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i, face in enumerate(faces[:4]):
            zf.writestr(f"letters/{'ABCD'[i]}.png", encode(face, "PNG", 8))
        zf.writestr("README.txt", "not an image")
    src = open_source(str(path), tmp_path)
    assert isinstance(src, ZipSource) and src.names() == ["A", "B", "C", "D"]
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    got = load_faces(src, 4, 1, seed=0)
    assert sorted(os.listdir(tmp_path)) == before and got.splits.count("holdout") == 1


def test_a_zip_member_escaping_its_folder_is_refused(tmp_path, faces):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../evil.png", encode(faces[0], "PNG", 8))
    with pytest.raises(UserError, match=r"'\.\./evil.png'.*'\.\.'"):
        ZipSource(path).names()


def test_a_link_in_a_folder_is_skipped_not_followed(tmp_path, faces):
    root = flat_folder(tmp_path / "mine", faces[:3])
    (root / "stolen.png").symlink_to(root / "digit_0.png")
    (name, img, why), = FolderSource(root).read(["stolen"])
    assert img is None and "not a regular file" in why


def test_holdout_never_puts_one_person_on_both_sides():
    names = [f"P{p}_{i:04d}" for p in range(30) for i in range(1, 1 + p % 4 + 1)]
    for seed in range(20):
        order = list(np.random.default_rng(seed).permutation(names))[:40]
        split = split_holdout(order, 8)
        sides: dict[str, set] = {}
        for n, s in split.items():
            sides.setdefault(person_of(n), set()).add(s)
        assert all(len(s) == 1 for s in sides.values())
        assert sum(s == "holdout" for s in split.values()) <= 8


def test_holdout_of_single_image_persons_is_the_last_in_selection_order():
    order = [f"lfw_subset_{i:03d}" for i in (5, 2, 9, 7, 1)]
    split = split_holdout(order, 2)
    assert [n for n in order if split[n] == "holdout"] == ["lfw_subset_007", "lfw_subset_001"]


def test_holdout_match_holds_out_names_matching_the_protocols_rule():
    order = ["three_train", "seven_test", "one_train", "five_test"]
    split = split_holdout(order, holdout_match="_test$")
    assert {n for n, s in split.items() if s == "holdout"} == {"seven_test", "five_test"}


def test_holdout_match_splitting_a_person_is_refused_naming_the_person():
    with pytest.raises(UserError, match="person 'A' on both sides"):
        split_holdout(["A_0001", "A_0002", "B_0001"], holdout_match="A_0002")


@pytest.mark.parametrize("faces_cfg, message", [
    ({"holdout": 2, "holdout_match": "x", "count": 5}, "not both"),
    ({"holdout_match": "(", "count": 5}, "not a regular expression"),
])
def test_bad_holdout_rules_are_refused_by_the_schema(faces_cfg, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        FacesConfig(**faces_cfg)

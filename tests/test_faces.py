"""Face sources: LFW folders and lfw.tgz archives built here from the embedded faces, and hostile ones."""

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from acquisition.faces import (
    ArchiveSource,
    EmbeddedSource,
    FolderSource,
    load_faces,
    open_source,
    selection_order,
)
from speckle_core.errors import UserError

N_FACES = 12  # images in the built sources: small and fast


@pytest.fixture(scope="module")
def embedded():
    from skimage.data import lfw_subset

    return lfw_subset()[:N_FACES]


def jpeg_bytes(face: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((face * 255).astype(np.uint8)).convert("RGB").save(buf, "JPEG", quality=95)
    return buf.getvalue()


def lfw_name(i: int) -> tuple[str, str]:
    person = f"Person_{chr(65 + i // 2)}"
    return person, f"{person}_{i % 2 + 1:04d}"


def make_folder(root: Path, faces, wrap: str | None = None) -> Path:
    base = root / wrap if wrap else root
    for i, face in enumerate(faces):
        person, name = lfw_name(i)
        (base / person).mkdir(parents=True, exist_ok=True)
        (base / person / f"{name}.jpg").write_bytes(jpeg_bytes(face))
    return root


def add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def make_tgz(path: Path, faces, extra=()) -> Path:
    """An lfw.tgz laid out like the real one (lfw/Name/Name_0001.jpg), plus ``extra`` (name, bytes)."""
    with tarfile.open(path, "w:gz") as tf:
        for i, face in enumerate(faces):
            person, name = lfw_name(i)
            add_bytes(tf, f"lfw/{person}/{name}.jpg", jpeg_bytes(face))
        for name, data in extra:
            add_bytes(tf, name, data)
    return path


def test_embedded_source_is_the_first_100_images_of_lfw_subset():
    from skimage.data import lfw_subset

    src = EmbeddedSource()
    names = src.names()
    assert len(names) == 100 and names[0] == "lfw_subset_000" and names[-1] == "lfw_subset_099"
    (name, img, _), = src.read(["lfw_subset_042"])
    assert name == "lfw_subset_042"
    np.testing.assert_allclose(img, lfw_subset()[42], atol=1e-6)


def test_folder_names_are_lfw_file_stems(tmp_path, embedded):
    src = FolderSource(make_folder(tmp_path, embedded[:4]))
    assert src.names() == ["Person_A_0001", "Person_A_0002", "Person_B_0001", "Person_B_0002"]


def test_folder_with_one_wrapping_folder_is_found(tmp_path, embedded):
    src = open_source(str(make_folder(tmp_path, embedded[:3], wrap="lfw")), tmp_path)
    assert len(src.names()) == 3


def test_folder_images_are_gray_in_unit_range_and_match_the_source(tmp_path, embedded):
    faces = load_faces(FolderSource(make_folder(tmp_path, embedded)), N_FACES, 0, seed=1)
    for name, img in zip(faces.names, faces.images, strict=True):
        i = [lfw_name(k)[1] for k in range(N_FACES)].index(name)
        assert img.dtype == np.float32 and img.shape == (25, 25)
        assert img.min() >= 0.0 and img.max() <= 1.0
        assert np.abs(img - embedded[i]).mean() < 0.02  # JPEG round trip


def test_selection_is_deterministic_by_seed(tmp_path, embedded):
    src = FolderSource(make_folder(tmp_path, embedded))
    a = load_faces(src, 5, 2, seed=7)
    b = load_faces(src, 5, 2, seed=7)
    c = load_faces(src, 5, 2, seed=8)
    assert a.names == b.names and a.splits == b.splits
    assert a.names != c.names
    assert a.names == sorted(a.names)


def test_holdout_count_is_honoured(tmp_path, embedded):
    faces = load_faces(FolderSource(make_folder(tmp_path, embedded)), 10, 3, seed=0)
    assert faces.splits.count("holdout") == 3 and faces.splits.count("train") == 7


def test_archive_and_folder_with_the_same_faces_give_the_same_selection(tmp_path, embedded):
    folder = FolderSource(make_folder(tmp_path / "dir", embedded))
    archive = ArchiveSource(make_tgz(tmp_path / "lfw.tgz", embedded))
    a = load_faces(folder, 6, 2, seed=3)
    b = load_faces(archive, 6, 2, seed=3)
    assert a.names == b.names and a.splits == b.splits
    for x, y in zip(a.images, b.images, strict=True):
        np.testing.assert_array_equal(x, y)


def test_open_source_resolves_paths_relative_to_the_protocol(tmp_path, embedded):
    (tmp_path / "data").mkdir()
    make_tgz(tmp_path / "data" / "lfw.tgz", embedded[:2])
    src = open_source("data/lfw.tgz", tmp_path)
    assert isinstance(src, ArchiveSource) and len(src.names()) == 2


def test_missing_source_names_the_key_and_path(tmp_path):
    with pytest.raises(UserError, match=r"p.toml: faces.source: .*nope.tgz does not exist"):
        open_source("nope.tgz", tmp_path, origin="p.toml")


def test_more_faces_than_the_source_holds_is_refused(tmp_path, embedded):
    src = FolderSource(make_folder(tmp_path, embedded[:3]))
    with pytest.raises(UserError, match="faces.count: 5 faces requested .* only 3"):
        load_faces(src, 5, 0, seed=0)


@pytest.mark.parametrize("member, why", [
    ("lfw/../../evil.jpg", "'..'"),
    ("/tmp/evil.jpg", "absolute path"),
])
def test_hostile_member_paths_are_refused_naming_the_member(tmp_path, embedded, member, why):
    archive = make_tgz(tmp_path / "lfw.tgz", embedded[:2], extra=[(member, jpeg_bytes(embedded[0]))])
    with pytest.raises(UserError) as e:
        ArchiveSource(archive).names()
    assert member in str(e.value) and why in str(e.value)
    assert not (tmp_path.parent / "evil.jpg").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_link_members_are_refused(tmp_path, embedded, kind):
    path = make_tgz(tmp_path / "lfw.tgz", embedded[:1])
    with tarfile.open(path, "w:gz") as tf:
        link = tarfile.TarInfo("lfw/Person_Z/Person_Z_0001.jpg")
        link.type = kind
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(UserError, match=r"Person_Z_0001.jpg.*a link"):
        ArchiveSource(path).names()


def test_truncated_archive_is_a_one_line_error(tmp_path, embedded):
    whole = make_tgz(tmp_path / "whole.tgz", embedded).read_bytes()
    cut = tmp_path / "cut.tgz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UserError) as e:
        ArchiveSource(cut).names()
    assert "truncated or corrupt" in str(e.value) and "\n" not in str(e.value)


def test_corrupt_jpegs_are_skipped_counted_and_replaced(tmp_path, embedded):
    good = jpeg_bytes(embedded[0])
    bad = [("lfw/Bad_A/Bad_A_0001.jpg", b"not a jpeg at all"),
           ("lfw/Bad_B/Bad_B_0001.jpg", good[: len(good) // 3])]  # truncated JPEG
    archive = ArchiveSource(make_tgz(tmp_path / "lfw.tgz", embedded[:6], extra=bad))
    faces = load_faces(archive, 6, 1, seed=0)  # needs every good image: both bad ones must be met
    assert len(faces.names) == 6 and not any(n.startswith("Bad") for n in faces.names)
    assert sorted(s.split(":")[0] for s in faces.skipped) == ["Bad_A_0001", "Bad_B_0001"]


def test_corrupt_image_in_a_folder_is_skipped(tmp_path, embedded):
    root = make_folder(tmp_path, embedded[:4])
    (root / "Person_A" / "Person_A_0001.jpg").write_bytes(b"\xff\xd8\xff garbage")
    faces = load_faces(FolderSource(root), 3, 0, seed=0)
    assert "Person_A_0001" not in faces.names
    assert faces.skipped and faces.skipped[0].startswith("Person_A_0001:")


def test_too_few_readable_images_is_a_one_line_error(tmp_path, embedded):
    root = make_folder(tmp_path, embedded[:3])
    (root / "Person_A" / "Person_A_0001.jpg").write_bytes(b"junk")
    with pytest.raises(UserError, match=r"only 2 of the 3 images .* readable \(1 skipped"):
        load_faces(FolderSource(root), 3, 0, seed=0)


def test_reading_an_archive_writes_nothing_to_disk(tmp_path, embedded, monkeypatch):
    archive = make_tgz(tmp_path / "lfw.tgz", embedded[:4])
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    load_faces(ArchiveSource(archive), 4, 0, seed=0)
    assert sorted(os.listdir(tmp_path)) == before


def test_selection_order_depends_only_on_the_names_not_their_order():
    names = [f"n{i}" for i in range(20)]
    assert selection_order(names, 5) == selection_order(list(reversed(names)), 5)

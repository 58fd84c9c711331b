"""Binarisation: crop, resize (checked against scikit-image), Otsu (checked against scikit-image)."""

import numpy as np
import pytest
from PIL import Image
from skimage.filters import threshold_otsu
from skimage.transform import resize

from acquisition.binarise import binarise, contact_sheet, crop, resize_gray, threshold
from protocols.schema import FacesConfig


@pytest.fixture(scope="module")
def face():
    from skimage.data import lfw_subset

    return lfw_subset()[7].astype(np.float32)


def test_output_is_uint8_zero_one_at_the_target_size(face):
    obj = binarise(face, FacesConfig(target_px=(80, 96)))
    assert obj.dtype == np.uint8 and obj.shape == (80, 96)
    assert set(np.unique(obj)) == {0, 1}


def test_bilinear_resize_equals_scikit_image(face):
    ours = resize_gray(face, (200, 200), "bilinear")
    ref = resize(face, (200, 200), order=1, mode="edge", anti_aliasing=False)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_otsu_threshold_equals_scikit_image_on_the_resized_face(face):
    big = resize_gray(face, (160, 160))
    expected = (big > threshold_otsu(big)).astype(np.uint8)
    np.testing.assert_array_equal(binarise(face, FacesConfig(target_px=(160, 160))), expected)


def test_fixed_threshold_and_invert():
    gray = np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10)
    above = threshold(gray, "fixed", 0.25)
    assert above.sum() == np.count_nonzero(gray > 0.25)
    np.testing.assert_array_equal(threshold(gray, "fixed", 0.25, invert=True), 1 - above)


def test_crop_takes_top_left_height_width():
    gray = np.arange(100, dtype=np.float32).reshape(10, 10)
    np.testing.assert_array_equal(crop(gray, (2, 3, 4, 5)), gray[2:6, 3:8])


def test_crop_larger_than_the_image_is_an_error_naming_the_key():
    with pytest.raises(ValueError, match="faces.crop_px"):
        crop(np.zeros((25, 25), np.float32), (10, 10, 20, 20))


def test_uniform_face_has_no_otsu_threshold():
    with pytest.raises(ValueError, match="uniform"):
        threshold(np.full((8, 8), 0.3, np.float32))


def test_resizing_before_thresholding_gives_contours_finer_than_a_source_pixel(face):
    # 25 px → 800 px: one source pixel is a 32×32 block. Thresholding a nearest-neighbour resize can
    # change value only on block boundaries; the documented bilinear-then-threshold does not.
    def edge_columns(obj):
        return set(np.nonzero(np.diff(obj.astype(np.int8), axis=1))[1] + 1)

    smooth = binarise(face, FacesConfig(interpolation="bilinear"))
    blocky = binarise(face, FacesConfig(interpolation="nearest"))
    assert all(c % 32 == 0 for c in edge_columns(blocky))
    assert any(c % 32 != 0 for c in edge_columns(smooth))


def test_contact_sheet_writes_a_png_with_one_cell_per_face(tmp_path, face):
    objs = [binarise(face, FacesConfig(target_px=(64, 64)))] * 3
    out = contact_sheet([face] * 3, objs, ["a", "b", "c"], tmp_path / "sheet.png", tile_px=32, columns=2)
    with Image.open(out) as im:
        assert im.size[0] == 2 * (2 * 32 + 3 * 6)  # two cells across
        assert im.size[1] == 2 * (32 + 14 + 2 * 6)  # two rows

"""The protocol file format: what one acquisition run captures, and how.

A protocol is TOML validated on load (``protocols.load_protocol``). Unknown keys are errors and
every number has bounds, so a typo or an absurd value is refused with one line naming the file,
the key and what was expected (exit 2). Units are in the key names (``settle_ms``, ``exposure_us``,
``distances_mm``). The shipped protocols (``paper-2023.toml``, ``quick.toml``) show every key.

Sections:

- ``[faces]``: where the face images come from, how many, which are held out of training, and how
  each becomes a binary 800×800 object (crop → resize → threshold; see ``acquisition.binarise``);
- ``[slm]``: the π gray level, the settle time after each flip, the required phase-stroke mode;
- ``[camera]``: the ROI, the exposure (fixed, or auto per block), frames averaged, capture timeout;
- ``[[blocks]]``: one diffuser at one or more camera distances, for training or for validation;
- ``[dark]``: dark frames per block; ``[stability]``: the drift monitor's reference pattern;
  ``[retry]``: what to do when a device times out.

Pair count = faces.count × (1 + len(faces.variants)) × Σ over blocks (len(distances_mm) × repeats).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from speckle_core.config import StrictModel
from speckle_core.variants import MAX_VARIANTS, max_shift, parse_variant, variant_label


def _invalid(message: str) -> PydanticCustomError:
    """A validation error whose message is shown as is (no "Value error, " prefix)."""
    return PydanticCustomError("value_error", message)

MAX_FACES = 20_000  # LFW holds 13,233 images; more is a typo
MAX_TARGET_PX = 4096  # larger than any SLM window we drive (EXULUS-HD2: 1920×1200)
MAX_PAIRS = 1_000_000  # ~ 11 days at 1 pair/s: anything larger is a typo

Px2 = tuple[int, int]


def block_ref(i: int) -> str:
    """How messages name the protocol's i-th (0-based) ``[[blocks]]`` table: counted from 1, as a
    person counts them in the file, and as ``speckle-lab plan`` lists them."""
    return f"[[blocks]] #{i + 1}"


def name_blocks_in(message: str) -> str:
    """Rewrites pydantic's ``blocks.0.key`` location into ``[[blocks]] #1.key``."""
    return re.sub(r"(?<![\w.])blocks\.(\d+)(?=[.:])", lambda m: block_ref(int(m.group(1))), message)


class BinariseConfig(StrictModel):
    """How a gray face (0..1) becomes a binary object (0/1). See ``acquisition.binarise``."""

    method: Literal["otsu", "fixed"] = Field(
        default="otsu",
        description="otsu: scikit-image threshold_otsu of each resized face; fixed: `threshold`")
    threshold: float = Field(
        default=0.5, ge=0.0, le=1.0, description="gray level (0..1) for method = 'fixed'; ignored by otsu")
    invert: bool = Field(
        default=False, description="false: pixels brighter than the threshold are 1 (shown at the π level)")


class FacesConfig(StrictModel):
    """The objects: face images (or a lab's own), selected, cropped, resized and binarised to the SLM
    window."""

    kind: Literal["faces", "objects"] = Field(
        default="faces", description="what the images show: faces (LFW, the embedded set), or a lab's "
                                     "own objects (digits, letters, patterns); named so in plan and inspect")
    source: str = Field(
        default="embedded",
        description='"embedded" (scikit-image lfw_subset, its 100 faces), or a path relative to the '
                    "protocol file: a folder of images (flat, or LFW's Name/Name_0001.jpg) or an "
                    "archive of them (.tgz, .tar, .zip; e.g. lfw.tgz); PNG, JPEG or TIFF at any "
                    "size and bit depth")
    count: int = Field(
        default=100, ge=1, le=MAX_FACES, description="images to select (all of them are captured)")
    seed: int = Field(
        default=0, ge=0, le=2**32 - 1, description="seeds the selection: same seed, same images")
    holdout: int = Field(
        default=0, ge=0, le=MAX_FACES,
        description="of `count`, images never used for training (split 'holdout'; still captured), "
                    "whole persons at a time: A_0001 and A_0002 are one person (docs/protocol.md)")
    holdout_match: str | None = Field(
        default=None,
        description="instead of `holdout`: hold out the selected images whose name matches this "
                    "regular expression (Python re.search), e.g. '_test$'; a person on both "
                    "sides is refused")
    crop_px: tuple[int, int, int, int] | None = Field(
        default=None,
        description="[top, left, height, width] in source pixels, applied first; none: whole image")
    target_px: Px2 = Field(
        default=(800, 800), description="the binary object's (rows, cols): the SLM window (paper: 800×800)")
    interpolation: Literal["bilinear", "nearest"] = Field(
        default="bilinear", description="resizing the gray face to target_px, before thresholding")
    binarise: BinariseConfig = Field(default_factory=BinariseConfig, description="the threshold")
    variants: list[str] = Field(
        default_factory=list, max_length=MAX_VARIANTS,
        description="new objects made from each selected face, e.g. [\"mirror\", \"shift:0,64\", "
                    "\"mirror shift:64,0\"]: steps 'mirror' (left-right) and 'shift:DY,DX' (object pixels, "
                    "uncovered band 0), applied in order; each face yields itself plus one object per "
                    "variant, named NAME~mirror~shift+64+0, held out with its face "
                    "(speckle_core.variants)")

    @field_validator("source")
    @classmethod
    def _source_nonempty(cls, v: str) -> str:
        if not v.strip():
            raise _invalid('must be "embedded" or a path to an LFW folder or lfw.tgz')
        return v

    @field_validator("holdout_match")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.strip() or len(v) > 1000:
            raise _invalid("must be a regular expression (1..1000 characters) matching held-out names")
        try:
            re.compile(v)
        except re.error as e:
            raise _invalid(f"not a regular expression ({e})") from None
        return v

    @field_validator("variants")
    @classmethod
    def _variants(cls, v: list[str]) -> list[str]:
        seen: dict[str, str] = {}
        for spec in v:
            try:
                label = variant_label(parse_variant(spec))
            except ValueError as e:
                raise _invalid(str(e)) from None
            if label in seen:
                raise _invalid(f"{spec!r} makes the same object as {seen[label]!r}")
            seen[label] = spec
        return v

    @field_validator("crop_px")
    @classmethod
    def _crop_positive(cls, v):
        if v is None:
            return v
        top, left, h, w = v
        if top < 0 or left < 0 or h < 1 or w < 1 or max(v) > 100_000:
            raise _invalid("must be [top, left, height, width] with top, left >= 0 and height, width >= 1")
        return v

    @field_validator("target_px")
    @classmethod
    def _target_bounds(cls, v):
        if not all(8 <= x <= MAX_TARGET_PX for x in v):
            raise _invalid(f"each side must be 8..{MAX_TARGET_PX} px")
        return v

    @model_validator(mode="after")
    def _holdout_below_count(self) -> FacesConfig:
        if self.holdout_match is not None and self.holdout:
            raise _invalid("faces.holdout and faces.holdout_match both set: hold out a number of images "
                           "at random (holdout) or those whose name matches (holdout_match), not both")
        rows, cols = self.target_px
        for spec in self.variants:
            dy, dx = max_shift(parse_variant(spec))
            if dy >= rows or dx >= cols:
                raise _invalid(f"faces.variants: {spec!r} shifts the object by more than target_px "
                               f"({rows}x{cols}): nothing of it would remain")
        if self.holdout >= self.count:
            raise _invalid(f"faces.holdout ({self.holdout}) must be less than faces.count ({self.count}): "
                             "some faces must remain for training")
        return self

    @property
    def embedded(self) -> bool:
        return self.source == "embedded"

    @property
    def objects_per_face(self) -> int:
        """The face itself plus one object per variant."""
        return 1 + len(self.variants)

    @property
    def objects_total(self) -> int:
        """Objects the run captures: ``count`` faces × ``objects_per_face``."""
        return self.count * self.objects_per_face


class SlmConfig(StrictModel):
    """How objects are shown on the SLM."""

    gray_pi: int | Literal["auto"] = Field(
        default="auto",
        description='gray level of phase π for object pixels = 1 ("auto": from the rig\'s LUT)')
    settle_ms: float = Field(
        default=0.0, ge=0.0, le=10_000.0,
        description="wait after each flip before capturing (the larger of this and the rig's settle_ms)")
    stroke_mode: Literal["full-wave", "half-wave", "any"] = Field(
        default="full-wave",
        description="the SLM phase-stroke mode the run requires (checked before any frame)")

    @field_validator("gray_pi", mode="before")
    @classmethod
    def _gray_range(cls, v):
        if v == "auto":
            return v
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 255:
            raise _invalid('must be "auto" or a gray level 1..255 (the SLM is 8-bit)')
        return v


class AutoExposureConfig(StrictModel):
    """Auto exposure, once per block: place a percentile of the frame at a level, few pixels saturated."""

    target_percentile: float = Field(
        default=99.0, gt=0.0, le=100.0, description="the pixel statistic placed (percent)")
    target_level: float = Field(
        default=0.75, gt=0.0, le=1.0, description="... at this fraction of the camera's maximum value")
    max_saturated_fraction: float = Field(
        default=0.001, ge=0.0, le=0.5, description="no more than this share of pixels at the camera maximum")
    start_us: float = Field(default=1000.0, gt=0.0, le=10_000_000.0, description="first trial exposure")
    min_us: float = Field(default=1.0, gt=0.0, le=10_000_000.0, description="shortest exposure allowed")
    max_us: float = Field(
        default=1_000_000.0, gt=0.0, le=10_000_000.0, description="longest exposure allowed")

    @model_validator(mode="after")
    def _ordered(self) -> AutoExposureConfig:
        if not self.min_us <= self.start_us <= self.max_us:
            raise _invalid(f"auto exposure needs min_us <= start_us <= max_us "
                             f"(got {self.min_us}, {self.start_us}, {self.max_us})")
        return self


class CameraConfig(StrictModel):
    """How frames are captured."""

    roi_px: Px2 = Field(
        default=(800, 800), description="(rows, cols) of the centred ROI; must fit the sensor")
    exposure_us: float | Literal["auto"] = Field(
        default="auto",
        description='a fixed exposure in µs, or "auto": decided per block by [camera.auto_exposure]')
    auto_exposure: AutoExposureConfig = Field(
        default_factory=AutoExposureConfig, description="used when exposure_us = 'auto'")
    average: int = Field(default=1, ge=1, le=256, description="frames averaged into each stored frame")
    timeout_ms: float | None = Field(
        default=None, gt=0.0, le=600_000.0,
        description="per-frame capture timeout; unset: the rig's timeout_ms")

    @field_validator("roi_px")
    @classmethod
    def _roi_bounds(cls, v):
        if not all(1 <= x <= 16_384 for x in v):
            raise _invalid("each side must be 1..16384 px")
        return v

    @field_validator("exposure_us", mode="before")
    @classmethod
    def _exposure_bounds(cls, v):
        if v == "auto":
            return v
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 < v <= 10_000_000.0:
            raise _invalid('must be "auto" or an exposure in µs, > 0 and <= 10 s')
        return float(v)

    @property
    def auto(self) -> bool:
        return self.exposure_us == "auto"


class BlockConfig(StrictModel):
    """One diffuser at one or more camera distances: every face is captured at each distance."""

    diffuser: str = Field(description="a diffuser name of the rig's changer slots, e.g. \"120\"")
    distances_mm: list[float] = Field(
        description="camera distances from the focal plane of the last lens (paper: 0, 20, 40 mm)")
    role: Literal["train", "validation"] = Field(
        default="train",
        description="train: for training and testing; validation: never trained on (paper: 40 mm)")
    repeats: int = Field(default=1, ge=1, le=100, description="captures of each face at each distance")

    @field_validator("diffuser", mode="before")
    @classmethod
    def _diffuser_name(cls, v):
        if isinstance(v, int) and not isinstance(v, bool):
            v = str(v)  # `diffuser = 120` means the diffuser named "120"
        if not isinstance(v, str) or not v.strip():
            raise _invalid('must be a diffuser name, e.g. "120"')
        return v

    @field_validator("distances_mm")
    @classmethod
    def _distances(cls, v: list[float]) -> list[float]:
        if not v:
            raise _invalid("needs at least one distance")
        if len(v) > 100:
            raise _invalid("at most 100 distances per block")
        for d in v:
            if not -1000.0 <= d <= 1000.0:
                raise _invalid(f"distance {d} mm is outside -1000..1000 mm")
        if len(set(v)) != len(v):
            raise _invalid(f"a distance appears twice ({v})")
        return v


class DarkConfig(StrictModel):
    """Dark frames (laser blocked), taken once per exposure setting (the dark signal depends on the
    exposure: bias + dark current × time), or once per block."""

    frames: int = Field(
        default=8, ge=0, le=1000,
        description="dark frames per dark capture, averaged into one stored frame (0: off)")
    per: Literal["exposure", "block"] = Field(
        default="exposure",
        description="exposure: one dark capture per exposure setting, reused by every block at "
                                "that exposure; block: one per block (diffuser and distance)")
    exposure_tolerance: float = Field(
        default=0.0, ge=0.0, le=0.5,
        description="per = exposure: blocks whose exposures differ by at most this fraction share a dark "
                    "(0: only equal exposures; auto exposure gives each block its own)")


class StabilityConfig(StrictModel):
    """The drift monitor: a fixed reference pattern recaptured and correlated with its first capture."""

    reference_every: int = Field(
        default=200, ge=0, le=MAX_PAIRS,
        description="recapture the reference every N pairs of a block (0: off)")
    threshold: float = Field(
        default=0.9, ge=-1.0, le=1.0,
        description="Pearson correlation with the block's first reference capture")
    on_drift: Literal["ask", "stop", "log"] = Field(
        default="ask",
        description="below the threshold: ask (pause and ask; stops when unattended), stop, or "
                           "log (warn and go on)")


class RetryConfig(StrictModel):
    """Device timeouts and errors: retry with exponential backoff, then stop cleanly."""

    max_retries: int = Field(
        default=4, ge=0, le=100, description="retries of one device operation after it fails")
    backoff_s: float = Field(
        default=0.05, ge=0.0, le=600.0, description="first retry delay, doubled each retry ...")
    backoff_max_s: float = Field(default=5.0, ge=0.0, le=3600.0, description="... up to this")


class ProtocolConfig(StrictModel):
    """A whole protocol file."""

    name: str = Field(default="unnamed protocol", description="shown by plan, acquire and inspect")
    description: str = Field(default="", description="free text")
    faces: FacesConfig = Field(default_factory=FacesConfig, description="the objects")
    slm: SlmConfig = Field(default_factory=SlmConfig, description="showing objects")
    camera: CameraConfig = Field(default_factory=CameraConfig, description="capturing frames")
    blocks: list[BlockConfig] = Field(description="what to capture: at least one block")
    dark: DarkConfig = Field(default_factory=DarkConfig, description="dark frames")
    stability: StabilityConfig = Field(default_factory=StabilityConfig, description="drift monitor")
    retry: RetryConfig = Field(default_factory=RetryConfig, description="device failures")

    @field_validator("blocks")
    @classmethod
    def _blocks(cls, v: list[BlockConfig]) -> list[BlockConfig]:
        if not v:
            raise _invalid("needs at least one [[blocks]] table")
        if len(v) > 1000:
            raise _invalid("at most 1000 blocks")
        seen: dict[tuple[str, float], int] = {}
        for i, b in enumerate(v):
            for d in b.distances_mm:
                key = (b.diffuser, float(d))
                if key in seen:
                    raise _invalid(f"{block_ref(i)}: diffuser {b.diffuser!r} at {d:g} mm is already in "
                                   f"{block_ref(seen[key])}")
                seen[key] = i
        return v

    @model_validator(mode="after")
    def _pair_count(self) -> ProtocolConfig:
        if self.pairs_total > MAX_PAIRS:
            raise _invalid(f"{self.pairs_total} pairs is more than {MAX_PAIRS}; "
                             "reduce faces.count, faces.variants, distances or repeats")
        return self

    @property
    def pairs_total(self) -> int:
        return self.faces.objects_total * sum(len(b.distances_mm) * b.repeats for b in self.blocks)

    def source_path(self, protocol_dir: Path) -> Path | None:
        """The faces' folder or archive (relative paths are from the protocol file), or None if embedded."""
        if self.faces.embedded:
            return None
        p = Path(self.faces.source).expanduser()
        return p if p.is_absolute() else Path(protocol_dir) / p

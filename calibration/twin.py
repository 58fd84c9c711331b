"""``speckle-lab calibrate twin``: fit the simulated rig to a captured run (docs/calibration.md, "The twin").

The fit is simulation-based: the run's statistics (calibration.twin_stats) are measured once; the
simulated rig is then run on the same objects, diffusers, distances and exposures, its statistics
measured the same way, and each parameter is updated from the statistic it drives, until they agree:

- imaging NA ← NA × grain_sim / grain_run (the grain is λ/(2·NA) at the camera: Goodman §4.4),
  per diffuser at the nearest distance, combined with weights 1/variance between the twin's screens;
- flux ← flux × level_run / level_sim of the empty-slot frames (all of the light, no diffuser);
- per diffuser, σφ² ← σφ² + ln(α_sim / α_run), since α = exp(−σφ²) (eq. 5), then the rms height
  σh = σφ·λ / (2π(n − 1));
- per diffuser, the correlation length w from g = T − α, T the diffuser's level over the empty
  slot's: g is the scattered light the iris passes, eq. (7) of calibration/twin_model.py; w solves
  eq. (7) at the new σφ and NA for g_run / (g_sim / g_eq7), the simulation's bias divided out;
- read noise ← read noise × σ_dark,run / σ_dark,sim, black level ← black level + the difference of
  the dark means (ADC counts), from the run's mean dark frames.

The analytic forms start the iteration (the grain → NA; α → σφ; g → w by eq. 7); the simulation
then corrects for what they leave out (the object's own light, the iris's soft edge, the screen's
sampling, the window, the Bayer pipeline). The twin uses other seeds than the run's rig, so it
matches statistics, not the same diffuser screens. How sure: the run is one screen per diffuser,
so the last round's twin screens are each inverted as if they were the run, and the spread of the
results is each parameter's (``realisation_spread``). Where a statistic does not constrain a
parameter, the parameter keeps its prior and the report says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from calibration.common import EMPTY_SLOT
from calibration.twin_model import W_MAX_UM, W_MIN_UM, corr_length_for, scattered_through_iris
from calibration.twin_stats import Block, RunStats, average_stats, run_stats
from speckle_core.errors import UserError

if TYPE_CHECKING:
    import h5py

    from hardware.rig import RigConfig

Advance = Callable[[int], None]  # moves a progress bar on by n steps (calibration.common.progress)
DarkStats = tuple[float, float]  # (mean, std × √n) of a mean dark frame, counts

ALPHA_MIN = 0.01  # below this the unscattered share is lost in the speckle: σh is not identifiable
REALISATIONS = 2  # twin screens averaged per round (the last round: FINAL_SCREENS × as many)
FINAL_SCREENS = 3
CONVERGED = 0.02  # the rounds stop when no parameter moves by more than this share
W_SPREAD_LIMIT = 0.10  # 1 σ share beyond which a correlation length is loose (twice it: not identifiable)
H_SPREAD_LIMIT = 0.075  # 1 σ share beyond which an rms height is called uncertain
MIN_DISTANCES = 2
SATURATED_RUN = 0.01  # mean share of saturated pixels in a block's frames above which the run is refused
WEAK_COUNTS = 8.0  # a block's 99th percentile above the dark frame (counts) below which it is refused


@dataclass
class RunData:
    path: str
    rig_text: str
    rig: RigConfig
    blocks: list[Block]
    patterns: dict[int, np.ndarray]
    dark_mean: float  # counts, the mean over the blocks' mean dark frames
    dark_std: float  # counts, the spatial std of a mean dark frame × √n (one frame's noise)
    dark_frames: int
    roi: tuple[int, int]

    @property
    def empty(self) -> str | None:
        return EMPTY_SLOT if any(b.diffuser == EMPTY_SLOT for b in self.blocks) else None


def _groups(f: h5py.File, max_objects: int) -> dict[tuple[str, float], dict[int, int]]:
    """(diffuser, distance) → up to ``max_objects`` done rows, one per object (first repeat)."""
    from speckle_core.runfile import dataset, read_array, read_strings

    done = read_array(f, "pairs/done")
    diff = read_strings(dataset(f, "pairs/diffuser"))
    dist = read_array(f, "pairs/distance_mm")
    obj = read_array(f, "pairs/object_index")
    groups: dict[tuple[str, float], dict[int, int]] = {}
    for row in np.flatnonzero(done):
        g = groups.setdefault((diff[row], round(float(dist[row]), 6)), {})
        if int(obj[row]) not in g and len(g) < max_objects:
            g[int(obj[row])] = int(row)
    return groups


def _check_saturation(path: str, f: h5py.File, groups: dict[tuple[str, float], dict[int, int]]) -> None:
    """Refuses (UserError) a block whose frames clip: clipped speckle has another contrast, grain
    and mean, and no fit can tell."""
    from speckle_core.runfile import read_array

    if "pairs/saturated_fraction" not in f:
        return
    sat = read_array(f, "pairs/saturated_fraction")
    for (d, z), rows in sorted(groups.items()):
        share = float(np.mean(sat[list(rows.values())]))
        if share > SATURATED_RUN:
            raise UserError(f"{path}: {d} at {z:g} mm: {100 * share:.1f} % of the pixels are saturated on "
                            f"average (at most {100 * SATURATED_RUN:g} %): clipped speckle has other "
                            "statistics; capture again with a lower exposure "
                            "(camera.auto_exposure.target_level)")


def _check_light(path: str, blocks: list[Block]) -> None:
    """Refuses (UserError) a block whose light hardly rises above the dark frame: its statistics
    would be the camera's noise, not the speckle's."""
    for b in blocks:
        counts = float(np.percentile(b.frames[0], 99.0)) * b.exposure_us
        if counts < WEAK_COUNTS:
            raise UserError(f"{path}: the light is too weak: {b.diffuser} at {b.distance_mm:g} mm reaches "
                            f"{counts:.1f} counts above the dark frame (99th percentile; at least "
                            f"{WEAK_COUNTS:g} needed); capture again with a longer exposure or more light")


def _check_geometry(path: str, rig: RigConfig, pattern_px: tuple[int, int], roi: tuple[int, int]) -> None:
    """Refuses (UserError) a run the twin cannot replay on its own rig: patterns that are not the
    rig's SLM window (the twin shows them as they were shown), frames larger than its sensor."""
    window = (int(rig.slm.window_px[0]), int(rig.slm.window_px[1]))
    if pattern_px != window:
        raise UserError(f"{path}: /objects/pattern is {pattern_px[0]}x{pattern_px[1]} px but the run's rig "
                        f"has slm.window_px = [{window[0]}, {window[1]}]: the twin cannot show these "
                        "patterns (was the run's rig attribute edited?)")
    sensor = (int(rig.camera.sensor_px[0]), int(rig.camera.sensor_px[1]))
    if roi[0] > sensor[0] or roi[1] > sensor[1]:
        raise UserError(f"{path}: frames of {roi[0]}x{roi[1]} px are larger than the run's rig camera "
                        f"(camera.sensor_px = [{sensor[0]}, {sensor[1]}])")


def load_run(path: str, max_objects: int) -> RunData:
    """The frames the fit uses, dark-subtracted and per µs; refuses runs it cannot fit (UserError)."""
    from hardware.rig import RigConfig
    from speckle_core.config import parse_toml_model
    from speckle_core.runfile import dataset, open_run, read_array

    with open_run(path) as f:
        rig_text = f.attrs["rig"]
        rig_text = rig_text.decode() if isinstance(rig_text, bytes) else str(rig_text)
        rig = parse_toml_model(rig_text, RigConfig, f"{path} (its rig attribute)")
        groups = _groups(f, max_objects)
        distances = sorted({z for _, z in groups})
        if len(distances) < MIN_DISTANCES:
            listed = ", ".join(f"{z:g}" for z in distances)
            raise UserError(f"{path}: too few distances for the fit: frames at {len(distances)} camera "
                            f"distance{'s' if len(distances) != 1 else ''} ({listed} mm); the decorrelation "
                            f"with distance needs at least {MIN_DISTANCES} (capture protocols/twin-fit.toml)")
        if not any(d != EMPTY_SLOT for d, _ in groups):
            raise UserError(f"{path}: no frames through a diffuser: nothing to fit")
        _check_saturation(path, f, groups)
        has_dark = "dark/frame" in f and "pairs/block" in f
        pair_block = read_array(f, "pairs/block") if has_dark else None
        dark_done = read_array(f, "dark/done") if has_dark and "dark/done" in f else None
        n_dark = int(f["dark"].attrs.get("n_frames", 0)) if has_dark else 0
        blocks, dark_means, dark_stds, used = [], [], [], set()
        speckle, exposure = dataset(f, "pairs/speckle"), read_array(f, "pairs/exposure_us")
        for (d, z), rows in sorted(groups.items()):
            frames = []
            for row in rows.values():
                img = np.asarray(speckle[row]).astype(np.float32)
                b = int(pair_block[row]) if pair_block is not None else -1
                if b >= 0 and n_dark > 0 and (dark_done is None or dark_done[b]):
                    dark = np.asarray(dataset(f, "dark/frame")[b]).astype(np.float32)
                    if b not in used:
                        used.add(b)
                        dark_means.append(float(dark.mean()))
                        dark_stds.append(float(dark.std()) * math.sqrt(n_dark))
                    img -= dark
                frames.append(img / np.float32(exposure[row]))
            exposure_us = float(np.median([exposure[r] for r in rows.values()]))
            blocks.append(Block(d, z, exposure_us, list(rows), frames))
        objects = sorted({o for b in blocks for o in b.objects})
        pattern = dataset(f, "objects/pattern")
        patterns = {o: np.asarray(pattern[o]) for o in objects}
        roi = (int(speckle.shape[1]), int(speckle.shape[2]))
        pattern_px = (int(pattern.shape[1]), int(pattern.shape[2]))
    _check_geometry(path, rig, pattern_px, roi)
    _check_light(path, blocks)
    dm = float(np.median(dark_means)) if dark_means else math.nan
    ds = float(np.median(dark_stds)) if dark_stds else math.nan
    return RunData(str(path), rig_text, rig, blocks, patterns, dm, ds, n_dark, roi)


# -- the parameters ---------------------------------------------------------------------------------

@dataclass
class Params:
    na: float
    flux: float
    read_noise_e: float
    black_level_adu: int
    sigma_phi: dict[str, float]  # rms phase of each diffuser's screen (rad)
    corr_um: dict[str, float]  # each diffuser's correlation length w (µm)
    notes: list[str] = field(default_factory=list)
    # per diffuser, the relative spread (1 σ) of (rms height, correlation length) that one screen's
    # realisation gives: the run is one realisation (module doc, "How sure")
    spread: dict[str, tuple[float, float]] = field(default_factory=dict)
    grain_ratio: float = math.nan  # the twin's grain over the run's, weighted as the NA update weighs it

    def theta0(self, d: str, dn: float, lam_um: float) -> float:
        """The geometric rms scattering angle per axis, √2·(n − 1)·σh/w (hardware/sim/diffuser.py)."""
        h = self.sigma_phi[d] * lam_um / (2.0 * math.pi * dn)
        return math.sqrt(2.0) * dn * h / self.corr_um[d]


def _optics(sim) -> tuple[float, float]:
    return sim.wavelength_nm / 1000.0, sim.glass_index - 1.0


def prior_params(run: RunData) -> Params:
    """The start: the simulated rig's DEFAULT constants (hardware/sim/config.py), not the run's rig
    file's [sim] table, which for a real rig holds nothing measured (and for a simulated run, the
    answer). A diffuser the defaults do not name starts as the 600-grit one."""
    from hardware.rig import RigConfig

    sim, default = run.rig.sim, RigConfig().sim  # the [sim] defaults, through the rig's own model
    names = [d for d in {b.diffuser for b in run.blocks} if d != EMPTY_SLOT]
    specs = {d: default.diffusers.get(d, default.diffusers["600"]) for d in names}
    lam, dn = _optics(sim)
    sensor = default.sensor
    # σφ = 2π(n−1)σh/λ: the thin-screen relation of docs/simulation.md
    return Params(default.imaging_na, sensor.flux_e_per_us, sensor.read_noise_e, sensor.black_level_adu,
                  {d: 2.0 * math.pi * dn * s.rms_height_um / lam for d, s in specs.items()},
                  {d: float(s.corr_length_um) for d, s in specs.items()})


def diffuser_specs(run: RunData, p: Params) -> dict[str, dict[str, float]]:
    """σφ → rms height (hardware/sim/diffuser.py's relation inverted), with the correlation length."""
    lam, dn = _optics(run.rig.sim)
    out = {}
    for d, s_phi in p.sigma_phi.items():
        h = s_phi * lam / (2.0 * math.pi * dn)
        w = p.corr_um[d]
        out[d] = {"rms_height_um": round(h, 5), "corr_length_um": round(min(max(w, W_MIN_UM), W_MAX_UM), 4)}
    return out


def sim_table(run: RunData, p: Params, seed: int) -> dict:
    """The fitted [sim] table: the run's (or default) constants with the fitted ones in place.

    The SLM's glass is the default one (``[sim.slm]`` left out: the rig's LUT is exact, no
    settling): the run showed its objects at its LUT's π level, i.e. at phase π on a calibrated
    rig, and the twin shows them at phase π; a simulated run's hidden SLM curve must not carry
    over (it would put the twin's gray 128 at another phase)."""
    sim = run.rig.sim.model_dump(mode="json")
    sim.pop("slm", None)
    sim["seed"] = seed
    sim["noise"] = True
    sim["imaging_na"] = round(p.na, 7)
    diffusers = dict(sim.get("diffusers", {}))
    diffusers.update(diffuser_specs(run, p))
    for name in run.rig.changer.diffusers:  # every slot needs constants for the simulated wheel
        diffusers.setdefault(name, {"rms_height_um": 0.4, "corr_length_um": 9.0})
    diffusers[EMPTY_SLOT] = {"rms_height_um": 0.0, "corr_length_um": 10.0}
    sim["diffusers"] = diffusers
    sim["sensor"] = dict(sim["sensor"], flux_e_per_us=round(p.flux, 6), read_noise_e=round(p.read_noise_e, 4),
                         black_level_adu=int(p.black_level_adu))
    return sim


def twin_rig_dict(run: RunData, p: Params, seed: int) -> dict:
    cfg = run.rig
    slots = dict(cfg.changer.slots)
    if EMPTY_SLOT not in slots.values() and run.empty:
        slots[str(max(int(k) for k in slots) + 1)] = EMPTY_SLOT
    cam = cfg.camera
    mode = cam.color_mode if cam.color_mode in ("mono8", "raw8") else "mono8"
    return {
        "name": f"simulated twin of {cfg.name}",
        "slm": {"kind": "sim", "window_px": list(cfg.slm.window_px), "stroke_mode": cfg.slm.stroke_mode,
                "settle_ms": cfg.slm.settle_ms, "lut_gray_2pi": 256.0},
        "camera": {"kind": "sim", "color_mode": mode, "sensor_px": list(cam.sensor_px),
                   "pixel_um": cam.pixel_um},
        "stage": {"kind": "sim", "zero_mm": cfg.stage.zero_mm, "direction": cfg.stage.direction,
                  "travel_mm": list(cfg.stage.travel_mm)},
        "changer": {"kind": "sim", "slots": slots},
        "sim": sim_table(run, p, seed),
    }


# -- the simulated twin -----------------------------------------------------------------------------

def simulate(run: RunData, rig_dict: dict, advance: Advance | None = None,
             darks: bool = True) -> tuple[list[Block], float, float]:
    """The run's blocks captured on the twin: (blocks, dark mean, dark std × √n) as load_run gives.
    Without ``darks``, one dark frame's mean stands for the dark frame (nan dark statistics)."""
    from hardware.drivers.manual import UnattendedOperator
    from hardware.rig import RigConfig, RigFile, build_rig

    cfg = RigConfig.model_validate(rig_dict)
    rig = build_rig(RigFile(cfg, "", None), UnattendedOperator())
    n_dark = max(run.dark_frames, 1)
    blocks, dm, ds = [], [], []
    try:
        for b in run.blocks:
            rig.changer.select(b.diffuser)
            rig.stage.move_to_mm(b.distance_mm)
            rig.camera.configure(run.roi, b.exposure_us)
            frames = [rig.camera.capture(1000.0, 1, key=("dark", b.diffuser, b.distance_mm, i)).image
                      for i in range(n_dark if darks else 1)]
            dark = np.mean(np.array(frames, np.float32), axis=0)
            if darks:
                dm.append(float(dark.mean()))
                ds.append(float(dark.std()) * math.sqrt(n_dark))
            else:
                dark = np.full_like(dark, float(dark.mean()))
            frames = []
            for o in b.objects:
                rig.slm.show_gray(np.where(run.patterns[o] > 0, np.uint8(128), np.uint8(0)))
                frame = rig.camera.capture(1000.0, 1, key=("twin", b.diffuser, b.distance_mm, o))
                frames.append((frame.image.astype(np.float32) - dark) / np.float32(frame.exposure_us))
            blocks.append(Block(b.diffuser, b.distance_mm, b.exposure_us, list(b.objects), frames))
            if advance:
                advance(1)
    finally:
        rig.close()
    return blocks, (float(np.median(dm)) if dm else math.nan), (float(np.median(ds)) if ds else math.nan)


def _mean(stats: RunStats, diffuser: str, attr: str) -> float:
    vals = [getattr(s, attr) for (d, _), s in stats.blocks.items() if d == diffuser]
    vals = [v for v in vals if math.isfinite(v)]
    return float(np.mean(vals)) if vals else math.nan


def _scattered(stats: RunStats, diffuser: str) -> float:
    """g, the scattered light the iris passes as a share of the empty slot's: T − α, T the diffuser's
    level over the empty slot's at the same distance (averaged over distances), α the regression's
    unscattered share. It is eq. (7) of calibration/twin_model.py and sets the correlation length.
    Means are precise where the regression's intercept β is not, so this, not β, is used."""
    if stats.empty is None:
        return math.nan
    empty = {z: s.level for (d, z), s in stats.blocks.items() if d == stats.empty and s.level > 0}
    ratios = [s.level / empty[z] for (d, z), s in stats.blocks.items() if d == diffuser and z in empty]
    alpha = _mean(stats, diffuser, "alpha")
    if not ratios or not math.isfinite(alpha):
        return math.nan
    return float(np.mean(ratios)) - max(alpha, 0.0)


def initial_guess(run: RunData, measured: RunStats, p: Params) -> None:
    """The analytic start: the grain → NA, α → σφ (eq. 5), g → w (eq. 7).

    The grain's half width at half maximum is 0.2572·λ/NA_c for a circular pupil ([2J1(v)/v]² = ½
    at v = 1.6163; Goodman §4.4), NA_c = NA/M2 the camera-side aperture."""
    sim, cam = run.rig.sim, run.rig.camera
    lam, _ = _optics(sim)
    grain = measured.grain_px()
    if math.isfinite(grain) and grain > 0:
        m2 = cam.pixel_um / (sim.slm_pixel_um * sim.relay_f2_mm / sim.relay_f1_mm)
        p.na = float(np.clip(0.2572 * lam / (grain * cam.pixel_um) * m2, 1e-4, 0.03))
    for d in p.sigma_phi:
        alpha = _mean(measured, d, "alpha")
        if math.isfinite(alpha) and alpha >= ALPHA_MIN:
            p.sigma_phi[d] = math.sqrt(-math.log(min(alpha, 0.999)))
        w = corr_length_for(_scattered(measured, d), p.sigma_phi[d], p.na, lam)
        if math.isfinite(w):
            p.corr_um[d] = w


def _new_sigma_phi(s_phi: float, a_run: float, a_sim: float) -> float:
    """σφ² ← σφ² + ln(α_sim/α_run), since α = exp(−σφ²) (eq. 5); unchanged when α says nothing."""
    if a_run >= ALPHA_MIN and a_sim > 1e-4:
        return math.sqrt(max(s_phi ** 2 + math.log(a_sim / a_run), 1e-4))
    return s_phi


def _new_corr(w: float, g_run: float, g_sim: float, before: tuple[float, float], after: tuple[float, float],
              lam: float) -> float:
    """w from g: eq. (7) inverted at the new (σφ, NA) for g_run divided by the simulation's bias, the
    ratio of the simulated g to eq. (7)'s at the parameters it was simulated with; unchanged when g
    is too small to say (noise)."""
    g_model = scattered_through_iris(before[0], w, before[1], lam)
    if not (g_run > 0 and g_sim > 0 and g_model > 0):
        return w
    bias = float(np.clip(g_sim / g_model, 0.25, 4.0))
    new = corr_length_for(g_run / bias, after[0], after[1], lam)
    return float(np.clip(new, 0.5 * w, 2.0 * w)) if math.isfinite(new) else w


def update(run: RunData, measured: RunStats, each: list[RunStats], p: Params, dark_run: DarkStats,
           dark_sim: DarkStats) -> float:
    """One step of the module doc's updates, each clipped to a factor of 2 (10 for the flux); returns
    the largest relative change of the NA, a σφ or a w (the fit stops when it is small). ``each``
    holds the round's twin statistics, one per simulated screen."""
    simulated = average_stats(each)
    lam, _ = _optics(run.rig.sim)
    na_before = p.na
    factor = _na_factor(measured, each)
    if math.isfinite(factor):
        p.na *= float(np.clip(factor, 0.5, 2.0))
    _update_flux(measured, simulated, p)
    change = abs(p.na / na_before - 1.0)
    for d in p.sigma_phi:
        s_before, w_before = p.sigma_phi[d], p.corr_um[d]
        p.sigma_phi[d] = _new_sigma_phi(s_before, _mean(measured, d, "alpha"), _mean(simulated, d, "alpha"))
        p.corr_um[d] = _new_corr(w_before, _scattered(measured, d), _scattered(simulated, d),
                                 (s_before, na_before), (p.sigma_phi[d], p.na), lam)
        change = max(change, abs(p.sigma_phi[d] / s_before - 1.0), abs(p.corr_um[d] / w_before - 1.0))
    _update_dark(run, p, dark_run, dark_sim)
    return change


def _na_factor(measured: RunStats, each: list[RunStats]) -> float:
    """NA_new / NA: the grain is λ/(2·NA), so the twin's grain over the run's, per diffuser at the
    nearest distance, combined in logs with weights 1/variance between the twin's screens (a weakly
    scattering diffuser's frame is mostly the object's band-limited image: its grain hardly moves
    with the screen, a fully developed speckle's does). The variance is floored at (1 %)²."""
    z0 = min(measured.distances)
    num = den = 0.0
    for d in measured.diffusers:
        g_run = measured.blocks[(d, z0)].grain_px
        sims = np.array([s.blocks[(d, z0)].grain_px for s in each])
        if not (math.isfinite(g_run) and g_run > 0 and np.all(np.isfinite(sims)) and np.all(sims > 0)):
            continue
        var = float(np.var(np.log(sims), ddof=1)) if len(sims) > 1 else 0.0
        weight = 1.0 / max(var, 1e-4)
        num += weight * math.log(float(np.mean(sims)) / g_run)
        den += weight
    return math.exp(num / den) if den > 0 else math.nan


def _update_flux(measured: RunStats, simulated: RunStats, p: Params) -> None:
    empty = measured.empty
    if empty is not None:
        l_run, l_sim = _mean(measured, empty, "level"), _mean(simulated, empty, "level")
    else:  # no empty slot: scale the flux so the diffusers' levels match (degenerate with w)
        l_run = float(np.mean([_mean(measured, d, "level") for d in measured.diffusers]))
        l_sim = float(np.mean([_mean(simulated, d, "level") for d in measured.diffusers]))
    if l_run > 0 and l_sim > 0:
        p.flux *= float(np.clip(l_run / l_sim, 0.1, 10.0))


def _update_dark(run: RunData, p: Params, dark_run: DarkStats, dark_sim: DarkStats) -> None:
    (m_run, s_run), (m_sim, s_sim) = dark_run, dark_sim
    if math.isfinite(s_run) and s_sim > 0 and s_run > 0.35:  # above the 8-bit step's own noise
        p.read_noise_e *= float(np.clip(s_run / s_sim, 0.5, 2.0))
    if math.isfinite(m_run) and math.isfinite(m_sim):
        bits = run.rig.sim.sensor.adc_bits
        p.black_level_adu = int(np.clip(round(p.black_level_adu + (m_run - m_sim) * 2 ** (bits - 8)), 0, 255))


def realisation_spread(run: RunData, p: Params, each: list[RunStats]) -> dict[str, tuple[float, float]]:
    """Per diffuser, the relative spread (1 σ) of (rms height, w) between the twin's screens: each
    realisation's statistics inverted as if it were the run (eqs. 5 and 7, at the fit's bias). The run
    is one realisation of its diffuser, so this is how far its own screen can pull the fit."""
    lam, _ = _optics(run.rig.sim)
    mean = average_stats(each)
    out = {}
    for d in p.sigma_phi:
        a_mean, g_mean = _mean(mean, d, "alpha"), _scattered(mean, d)
        g_model = scattered_through_iris(p.sigma_phi[d], p.corr_um[d], p.na, lam)
        hs, ws = [], []
        for s in each:
            s_phi = _new_sigma_phi(p.sigma_phi[d], _mean(s, d, "alpha"), a_mean)
            g = _scattered(s, d)
            w = corr_length_for(g / g_mean * g_model, s_phi, p.na, lam) if g > 0 and g_mean > 0 else math.nan
            hs.append(s_phi)
            ws.append(w if math.isfinite(w) else (W_MAX_UM if g >= g_mean else W_MIN_UM))
        if len(each) < 2:
            out[d] = (math.nan, math.nan)
            continue
        out[d] = (float(np.std(hs, ddof=1) / p.sigma_phi[d]), float(np.std(ws, ddof=1) / p.corr_um[d]))
    return out


def notes_for(run: RunData, measured: RunStats, p: Params) -> list[str]:
    """What the fit could not determine, in plain words."""
    out = []
    if run.empty is None:
        out.append("the run has no frames through the empty slot: the diffusers' rms heights and "
                   "correlation lengths keep their priors, and the flux only matches the diffusers' levels")
    for d in p.sigma_phi:
        out += _diffuser_notes(run, measured, p, d)
    if not (math.isfinite(run.dark_std) and run.dark_std > 0.35):
        out.append("the dark frames' noise is below the 8-bit step: read noise keeps its prior")
    if min(len(b.objects) for b in run.blocks) < 3:
        out.append("fewer than 3 objects in a block: the statistics rest on few speckle grains")
    return out


def _diffuser_notes(run: RunData, measured: RunStats, p: Params, d: str) -> list[str]:
    if run.empty is None:
        return []
    out = []
    a = _mean(measured, d, "alpha")
    if not (a >= ALPHA_MIN):
        out.append(f"diffuser {d}: the speckle is fully developed (unscattered share {max(a, 0):.3f} < "
                   f"{ALPHA_MIN}): its rms height cannot be measured and keeps its prior; only the "
                   "scattering angle, hence height/correlation length, is fitted")
    if not _scattered(measured, d) > 0:
        out.append(f"diffuser {d}: no scattered light measured through the iris (its level is no more than "
                   "its unscattered share): the correlation length is not identifiable from this run "
                   "and keeps its prior")
        return out
    h_rel, w_rel = p.spread.get(d, (math.nan, math.nan))
    if math.isfinite(w_rel) and w_rel > 2 * W_SPREAD_LIMIT:
        out.append(f"diffuser {d}: the correlation length is NOT identifiable from this run: one screen's "
                   f"realisation moves it by ±{w_rel:.0%} (1 σ); the value written is a guess. Capture more "
                   "of the diffuser (a larger camera ROI), or use a wider iris")
    elif math.isfinite(w_rel) and w_rel > W_SPREAD_LIMIT:
        out.append(f"diffuser {d}: the correlation length is loosely determined: ±{w_rel:.0%} (1 σ, one "
                   "screen's realisation)")
    if a >= ALPHA_MIN and math.isfinite(h_rel) and h_rel > H_SPREAD_LIMIT:
        out.append(f"diffuser {d}: the rms height is uncertain by ±{h_rel:.0%} (1 σ, one screen's "
                   "realisation)")
    return out


def _simulate_round(run: RunData, p: Params, seed: int, realisations: int,
                    advance: Advance | None) -> tuple[RunStats, list[RunStats], DarkStats]:
    """The twin's statistics averaged over ``realisations`` screens (seeds seed, seed + 1, …: the same
    every round, so the rounds differ only by the parameters), each realisation's, and the darks."""
    each, dark_sim = [], (math.nan, math.nan)
    for k in range(realisations):  # the dark frames do not depend on the screens: once a round
        blocks, dm, ds = simulate(run, twin_rig_dict(run, p, seed + k), advance, darks=k == 0)
        each.append(run_stats(blocks, run.empty))
        if k == 0:
            dark_sim = (dm, ds)
    return average_stats(each), each, dark_sim


def fit_twin(run: RunData, iterations: int, seed: int, advance: Advance | None = None,
             realisations: int = REALISATIONS) -> tuple[Params, RunStats, RunStats, dict]:
    """(params, measured stats, twin stats, twin rig dict).

    Each round simulates ``realisations`` twins with different seeds (different diffuser screens)
    and averages their statistics, so that the twin's own screen does not pull the fit; the run's
    screen is one realisation, as a real diffuser is. The rounds stop early once no parameter moves
    by more than ``CONVERGED``; the last round simulates FINAL_SCREENS × as many screens, for the
    statistics shown and for each diffuser's realisation spread (``Params.spread``)."""
    measured = run_stats(run.blocks, run.empty)
    p = prior_params(run)
    initial_guess(run, measured, p)
    for _ in range(iterations - 1):
        _, each, dark_sim = _simulate_round(run, p, seed, realisations, advance)
        if update(run, measured, each, p, (run.dark_mean, run.dark_std), dark_sim) < CONVERGED:
            break
    simulated, each, _ = _simulate_round(run, p, seed, FINAL_SCREENS * realisations, advance)
    p.spread = realisation_spread(run, p, each)
    p.grain_ratio = _na_factor(measured, each)
    p.notes = notes_for(run, measured, p)
    return p, measured, simulated, twin_rig_dict(run, p, seed)


def twin_seed(run: RunData) -> int:
    """Another seed than the run's rig: the twin matches statistics, not the same screens."""
    return (int(run.rig.sim.seed) + 1) % (2**31)

"""The optical field chain of the simulated rig (paper Fig. 4; docs/design.md, "The simulated rig").

1. SLM: gray g → phase φ(g) through the rig's PhaseLUT; a flat-top beam fills the window.
2. 4F relay L1/L2 (f 300/125 mm) images the SLM onto the diffuser, demagnified ×125/300, so one
   SLM pixel is one 3.33 µm sample of the diffuser plane. Its pupil (Ø relay_pupil_mm in L1's
   focal plane) band-limits the image: cut-off ν = (D/2)/(λ·f1) at the SLM.
3. Diffuser: multiply by the screen e^{iφd} (hardware/sim/diffuser.py).
4. L3–L4 relay: the last lens (L4) maps the diffuser field onto its focal plane, z = 0, with
   magnification M2 = 3.6/3.33 = 1.08 chosen so one SLM pixel lands on one camera pixel (the
   paper's reason for the 4F: "to match the pixel size of the CMOS camera with that of the
   SLM"). Its iris (diffuser-side NA ``imaging_na``) band-limits the field. The camera at z is
   reached by angular-spectrum propagation, H_z(ν) = exp(i2πz(√(1/λ² − ν²) − 1/λ)).

Sampling. One grid, sampled at 3.33 µm in the diffuser plane and hence 3.6 µm (one camera pixel)
at the camera: the magnification of step 4 is what reaches the camera's grid, so no
interpolation is needed. The grid is zero-padded around the window so that light spreading at the
iris angle over the stage's farthest reach, plus 3 Airy radii of diffraction tails, never wraps
into the camera window (``Geometry.grid_shape``). It is the same grid at every distance (960² for
the 800×800 default), and the iris has an apodised edge, so every grid samples the same pupil.
``imaging_na`` is refused beyond the NA whose |E|² the camera samples without aliasing.

FFTs per frame: lens-plus-propagation (FFT, iris × H_z, inverse FFT): the lens's Fourier
transform into the iris plane and the angular-spectrum step share one spectrum, so they fold
into ONE multiplication between one forward and one inverse FFT. Both are pruned to the spectrum
rows and columns the iris passes (``OpticalModel.camera_field_roi``), which halves their cost.
The relay needs its own pair (FFT, pupil, inverse FFT) only when its pupil cuts inside the
sampled band. By default it does not: sampling the SLM once per pixel already limits the band
to the SLM's Nyquist square (±62.5 cycles/mm), and the Ø25.4 mm pupil (66.9 cycles/mm) only
clips that square's corners, which changes a frame by < 0.2 % of its peak (under one 8-bit
step); ``relay_pupil_corners = true`` applies it anyway (4 full FFTs per frame).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from hardware.lut import PhaseLUT
from hardware.sim import kernels
from hardware.sim.config import SimConfig
from hardware.sim.diffuser import phase_screen
from hardware.sim.geometry import Geometry, Px2, iris_amplitude

WORKERS = -1  # scipy.fft threads: all cores
SCREEN_MARGIN = 32  # diffuser-plane samples of screen kept around the window (relay ringing)
SLIDE_SPAN = 1024  # extra screen columns drawn for a sliding diffuser: 3.4 mm of travel, then it wraps
SLIDE_PAD = 32  # samples either side of a Fourier-shifted slab, where the shift's wrap lands
def fringe(phase: np.ndarray, eps: float) -> np.ndarray:
    """Pixel fringing: φ' = (1 − 4ε)φ + ε·(sum of the 4 neighbours), edges mirrored (float32)."""
    p = np.pad(phase.astype(np.float32, copy=False), 1, mode="edge")
    nb = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]
    return (np.float32(1.0 - 4.0 * eps) * p[1:-1, 1:-1] + np.float32(eps) * nb).astype(np.float32)


@dataclass(frozen=True)
class Drift:
    """How far the bench has drifted: the diffuser slid sideways, and the beam tilted (about y)."""

    shift_um: float = 0.0  # diffuser displacement along x, in the diffuser plane
    tilt_rad: float = 0.0  # beam tilt at the diffuser, in the x–z plane

    def __bool__(self) -> bool:
        return bool(self.shift_um != 0.0 or self.tilt_rad != 0.0)


NO_DRIFT = Drift()


def centred(outer: Px2, inner: Px2) -> tuple[slice, slice]:
    """Slices of a centred (inner) block in an (outer) array; the optical axis is at n//2."""
    def axis(o: int, i: int) -> slice:
        return slice(o // 2 - i // 2, o // 2 - i // 2 + i)

    return axis(outer[0], inner[0]), axis(outer[1], inner[1])


class GridPlan:
    """Everything per grid shape: window and ROI slices, the relay pupil mask, frequencies."""

    def __init__(self, geo: Geometry, shape: Px2, roi: Px2):
        self.shape = shape
        self.window = centred(shape, geo.window)
        self.roi = centred(shape, roi)
        canvas = (geo.window[0] + 2 * SCREEN_MARGIN, geo.window[1] + 2 * SCREEN_MARGIN)
        self.canvas_shape: Px2 = (min(canvas[0], shape[0]), min(canvas[1], shape[1]))
        self.canvas = centred(shape, self.canvas_shape)
        self.canvas_crop = centred(canvas, self.canvas_shape)  # crop of the full screen canvas
        fy = sfft.fftfreq(shape[0], d=geo.dx_diffuser_um)[:, None]
        fx = sfft.fftfreq(shape[1], d=geo.dx_diffuser_um)[None, :]
        self.nu2_diffuser = fy**2 + fx**2  # (cycles/µm)², diffuser-plane spatial frequency
        relay = self.nu2_diffuser <= geo.relay_cutoff_per_um**2
        nyquist = 0.5 / geo.dx_diffuser_um
        cuts_band = geo.relay_cutoff_per_um < nyquist  # inside the band along the axes
        wanted = cuts_band or (geo.relay_corners and not relay.all())
        self.relay_mask = relay.astype(np.float32) if wanted else None


class PrunedPlan:
    """The rows and columns of the spectrum the iris touches, and the transfer function on them.

    The window sits at offset (r0, c0) on the grid but the pruned FFT transforms it from (0, 0):
    the shift theorem puts the offset back as the phase ramp exp(−2πi(k·r0/N0 + l·c0/N1)).
    """

    def __init__(self, plan: GridPlan, transfer: np.ndarray):
        nonzero = transfer != 0
        self.rows = np.flatnonzero(nonzero.any(axis=1))
        self.cols = np.flatnonzero(nonzero.any(axis=0))
        n0, n1 = plan.shape
        r0, c0 = plan.window[0].start, plan.window[1].start
        ramp_r = np.exp(-2j * np.pi * self.rows * r0 / n0)[:, None]
        ramp_c = np.exp(-2j * np.pi * self.cols * c0 / n1)[None, :]
        block = transfer[np.ix_(self.rows, self.cols)]
        self.transfer = (block * ramp_r * ramp_c).astype(np.complex64)


class OpticalModel:
    """The noiseless chain: SLM field → camera irradiance, with per-(diffuser, distance) caches.

    Irradiance unit: |E|² = 1 is the light of one illuminated SLM pixel on one camera pixel.
    """

    def __init__(self, sim: SimConfig, geo: Geometry, lut: PhaseLUT, seed: int):
        self.sim, self.geo, self.seed = sim, geo, seed
        self.lut_field = np.exp(1j * lut.phase_rad).astype(np.complex64)
        self.lut_phase = np.asarray(lut.phase_rad, dtype=np.float32)
        self._plans: dict[tuple[Px2, Px2], GridPlan] = {}
        self._screens: dict[str, np.ndarray] = {}
        self._screen_fields: dict[str, np.ndarray] = {}
        self._transfer: dict[tuple[Px2, float], np.ndarray] = {}
        self._pruned: dict[tuple, PrunedPlan] = {}
        self._beam: np.ndarray | None = None
        self._local = threading.local()  # per-thread work arrays (_work)
        self.window_in_screen = tuple(slice(SCREEN_MARGIN, SCREEN_MARGIN + w) for w in geo.window)

    # -- caches -------------------------------------------------------------------------------------
    def plan(self, roi: Px2, shape: Px2 | None = None) -> GridPlan:
        """The grid plan for ``roi``: on the rig's one grid (``Geometry.grid_shape``) unless
        ``shape`` names another (the convergence tests compare grids)."""
        roi = (int(roi[0]), int(roi[1]))
        grid: Px2 = self.geo.grid_shape(roi) if shape is None else (int(shape[0]), int(shape[1]))
        if (grid, roi) not in self._plans:
            self._plans[(grid, roi)] = GridPlan(self.geo, grid, roi)
        return self._plans[(grid, roi)]

    def screen_phase(self, diffuser: str) -> np.ndarray:
        """The diffuser's phase on the fixed canvas (window + margin), float32 radians.

        When the rig lets the diffuser slide (``diffuser_drift_um_per_hour``), the screen is drawn
        ``SLIDE_SPAN`` samples wider along x (another realisation of the same statistics), and
        its part ``SLIDE_PAD`` columns in is the diffuser at rest (``slid_phase``).
        """
        if diffuser not in self._screens:
            spec = self.sim.diffusers[diffuser]
            canvas = (self.geo.window[0] + 2 * SCREEN_MARGIN, self.geo.window[1] + 2 * SCREEN_MARGIN)
            if self.sim.diffuser_drift_um_per_hour != 0.0:
                canvas = (canvas[0], canvas[1] + SLIDE_SPAN)
            phase = phase_screen(canvas, self.geo.dx_diffuser_um, spec, self.geo.wavelength_um,
                                 self.sim.glass_index, self.seed, diffuser)
            self._screens[diffuser] = phase.astype(np.float32)
        return self._screens[diffuser]

    def screen_field(self, diffuser: str, drift: Drift = NO_DRIFT) -> np.ndarray:
        """e^{iφd} on the canvas (complex64), the diffuser slid by ``drift.shift_um`` and the beam
        tilted by ``drift.tilt_rad`` (a linear phase across the canvas); cached without drift."""
        width = self.geo.window[1] + 2 * SCREEN_MARGIN
        if not drift:
            if diffuser not in self._screen_fields:
                phase = self.slid_phase(diffuser, 0.0)
                self._screen_fields[diffuser] = np.exp(1j * phase).astype(np.complex64)
            return self._screen_fields[diffuser]
        phase = self.slid_phase(diffuser, drift.shift_um)
        if drift.tilt_rad:
            # a beam tilted by α about y: exp(i2π·sin α·x/λ) across the canvas, x from its centre
            x = (np.arange(width) - width // 2) * self.geo.dx_diffuser_um
            k = 2.0 * np.pi * math.sin(drift.tilt_rad) / self.geo.wavelength_um
            phase = phase + (k * x).astype(np.float32)
        return np.exp(1j * phase).astype(np.complex64)

    def slid_phase(self, diffuser: str, shift_um: float) -> np.ndarray:
        """The canvas-wide screen phase of the diffuser moved by ``shift_um`` along −x.

        Whole samples move the slice on the wide screen; the fraction is a Fourier shift along x,
        exact for the band-limited screen (the slab is padded so the shift's wrap stays outside).
        Beyond ``SLIDE_SPAN`` samples the slide wraps round the drawn screen.
        """
        width = self.geo.window[1] + 2 * SCREEN_MARGIN
        wide = self.screen_phase(diffuser)
        if wide.shape[1] == width:  # a rig whose diffuser does not slide
            if shift_um == 0.0:
                return wide
            raise ValueError("the diffuser slides only on a rig with diffuser_drift_um_per_hour set")
        if shift_um == 0.0:  # at rest: SLIDE_PAD columns in, so a shifted slab has its padding
            return wide[:, SLIDE_PAD:SLIDE_PAD + width]
            raise ValueError("the diffuser slides only on a rig with diffuser_drift_um_per_hour set")
        pos = (shift_um / self.geo.dx_diffuser_um) % (SLIDE_SPAN - 2 * SLIDE_PAD)
        k = int(math.floor(pos))
        frac = pos - k
        slab = wide[:, k:k + width + 2 * SLIDE_PAD]
        if frac == 0.0:
            return slab[:, SLIDE_PAD:SLIDE_PAD + width]
        # Remove the straight line through each row's ends so the slab's periodic extension has
        # no jump (whose ringing would reach the interior), shift, and put the line back shifted.
        n = slab.shape[1]
        first, last = slab[:, :1], slab[:, -1:]
        line = first + (last - first) * (np.arange(n, dtype=np.float32) / np.float32(n - 1))
        nu = sfft.rfftfreq(n)
        spec = np.asarray(sfft.rfft(slab - line, axis=1, workers=WORKERS))
        spec *= np.exp(2j * np.pi * nu * frac).astype(np.complex64)
        moved = np.asarray(sfft.irfft(spec, n=n, axis=1, workers=WORKERS))
        moved += line + (last - first) * np.float32(frac / (n - 1))
        return moved[:, SLIDE_PAD:SLIDE_PAD + width]

    def transfer(self, plan: GridPlan, distance_mm: float) -> np.ndarray:
        """Iris × angular-spectrum propagator on the grid's spectrum (complex64)."""
        key = (plan.shape, round(float(distance_mm), 9))
        if key not in self._transfer:
            geo = self.geo
            iris = iris_amplitude(np.sqrt(plan.nu2_diffuser), geo.iris_cutoff_per_um, geo.iris_edge)
            nu2_cam = plan.nu2_diffuser / geo.m_imaging**2  # camera-plane frequency = ν_d / M2
            kz = np.sqrt(np.maximum(1.0 / geo.wavelength_um**2 - nu2_cam, 0.0))
            # H_z = exp(i2πz(kz − 1/λ)): the plain exp(ikz) dropped; evanescent waves (none at
            # 3.6 µm sampling, since 1/(2·3.6 µm) < 1/λ) would be cut.
            phase = 2.0 * np.pi * distance_mm * 1000.0 * (kz - 1.0 / geo.wavelength_um)
            h = np.where(nu2_cam < 1.0 / geo.wavelength_um**2, iris * np.exp(1j * phase), 0.0)
            self._transfer[key] = h.astype(np.complex64)
        return self._transfer[key]

    # -- the chain ----------------------------------------------------------------------------------
    @property
    def slm_faults(self) -> bool:
        s = self.sim
        return bool(s.slm_unmodulated_share or s.slm_fringing_um or s.slm_flicker_rad or s.slm_beam_waist_mm)

    def slm_field(self, gray: np.ndarray, t_s: float = 0.0) -> np.ndarray:
        """Step 1: e^{iφ(g)} over the window (complex64), with the SLM's faults if any are set."""
        if not self.slm_faults:
            return np.take(self.lut_field, gray)
        return self.slm_field_from_phase(np.take(self.lut_phase, gray), t_s)

    def as_field(self, source: np.ndarray) -> np.ndarray:
        """The SLM field of ``source``: a field as it is, gray levels (uint8) through the LUT.

        The chain's entry points take either: an ideal SLM's gray levels let the fast path fuse
        the LUT lookup with the screen product (``kernels.window_field``), the same values."""
        return np.take(self.lut_field, source) if source.dtype == np.uint8 else source

    def slm_field_from_phase(self, phase: np.ndarray, t_s: float = 0.0) -> np.ndarray:
        """The field leaving the SLM for a phase pattern at bench time ``t_s`` (config.py: the
        faults' models): flicker, fringing, then unmodulated light and the beam profile."""
        s = self.sim
        if s.slm_flicker_rad:
            ripple = s.slm_flicker_rad * math.sin(2.0 * math.pi * s.slm_flicker_hz * t_s) / math.pi
            phase = phase * np.float32(1.0 + ripple)
        if s.slm_fringing_um:
            phase = fringe(phase, s.slm_fringing_um / (8.0 * s.slm_pixel_um))
        field = np.exp(1j * phase).astype(np.complex64)
        if s.slm_unmodulated_share:
            eta = s.slm_unmodulated_share
            field *= np.float32(math.sqrt(1.0 - eta))
            field += np.complex64(math.sqrt(eta))
        if s.slm_beam_waist_mm:
            field *= self.beam_profile()
        return field

    def beam_profile(self) -> np.ndarray:
        """Gaussian beam amplitude over the window, exp(−r²/w²), peak 1 at the window's centre."""
        if self._beam is None:
            w_um = self.sim.slm_beam_waist_mm * 1000.0
            rows, cols = (np.arange(n) - (n - 1) / 2.0 for n in self.geo.window)
            p = self.sim.slm_pixel_um
            self._beam = (np.exp(-((rows * p) ** 2) / w_um**2)[:, None]
                          * np.exp(-((cols * p) ** 2) / w_um**2)[None, :]).astype(np.float32)
        return self._beam

    def diffuser_field(self, slm_field: np.ndarray, diffuser: str, plan: GridPlan,
                       drift: Drift = NO_DRIFT) -> np.ndarray:
        """Steps 1–3 on the grid: the field just behind the diffuser (complex64, a new array)."""
        slm_field = self.as_field(slm_field)
        buf = np.zeros(plan.shape, np.complex64)
        screen = self.screen_field(diffuser, drift)
        if plan.relay_mask is None:  # no light outside the window: multiply the window only
            np.multiply(slm_field, screen[self.window_in_screen], out=buf[plan.window])
            return buf
        buf[plan.window] = slm_field
        spec = np.asarray(sfft.fft2(buf, workers=WORKERS, overwrite_x=True))  # step 2: the relay pupil
        spec *= plan.relay_mask
        buf = np.asarray(sfft.ifft2(spec, workers=WORKERS, overwrite_x=True))
        buf[plan.canvas] *= screen[plan.canvas_crop]  # step 3 (clear glass beyond the canvas)
        return buf

    def camera_field(self, diffuser_field: np.ndarray, distance_mm: float, plan: GridPlan) -> np.ndarray:
        """Step 4: lens to z = 0, iris, propagation by z, folded into FFT 3 and 4 (full grid)."""
        spec = np.asarray(sfft.fft2(diffuser_field, workers=WORKERS, overwrite_x=True))
        spec *= self.transfer(plan, distance_mm)
        return np.asarray(sfft.ifft2(spec, workers=WORKERS, overwrite_x=True))

    def pruned(self, plan: GridPlan, distance_mm: float) -> PrunedPlan:
        key = (plan.shape, tuple((r.start, r.stop) for r in plan.roi), round(float(distance_mm), 9))
        if key not in self._pruned:
            self._pruned[key] = PrunedPlan(plan, self.transfer(plan, distance_mm))
        return self._pruned[key]

    def camera_field_roi(self, slm_field: np.ndarray, diffuser: str, distance_mm: float, roi: Px2,
                         drift: Drift = NO_DRIFT, grid: Px2 | None = None) -> np.ndarray:
        """Steps 1–4 for the ROI only (complex64), the fast way when no relay FFTs are needed.

        The iris passes a small disc of the spectrum (about 30×30 of 864×864 samples by default),
        so both FFTs are pruned to the rows and columns it touches: the forward FFT along the
        columns keeps only the iris rows, then transforms those rows; the inverse FFT does the
        reverse and evaluates only the ROI. Equal to ``camera_field`` (test_sim_physics) at about
        the cost of one full 2-D FFT instead of two.
        """
        return self._roi_field(slm_field, diffuser, distance_mm, roi, drift, grid).copy()

    def _work(self, key: str, shape: Px2) -> np.ndarray:
        """A complex64 work array kept between frames, one per thread (fresh 6 MB arrays cost
        page faults comparable to the FFT passes)."""
        bufs = self._local.__dict__.setdefault("bufs", {})
        if bufs.get(key) is None or bufs[key].shape != shape:
            bufs[key] = np.zeros(shape, np.complex64)
        return bufs[key]

    def _roi_field(self, slm_field: np.ndarray, diffuser: str, distance_mm: float, roi: Px2,
                   drift: Drift = NO_DRIFT, grid: Px2 | None = None) -> np.ndarray:
        """``camera_field_roi``'s field as a view into a work array (valid until the next call)."""
        plan = self.plan(roi, grid)
        if plan.relay_mask is not None:
            behind = self.diffuser_field(slm_field, diffuser, plan, drift)
            return self.camera_field(behind, distance_mm, plan)[plan.roi]
        pr = self.pruned(plan, distance_mm)
        screen = self.screen_field(diffuser, drift)
        n0, n1 = plan.shape
        w0, w1 = slm_field.shape
        # the field behind the diffuser (window only), zero-padded to n0 rows in a kept array:
        # the same input as fft(g, n=n0), without scipy's padded copy, transformed in place
        g = self._work("g", (n0, w1))
        if slm_field.dtype == np.uint8:  # gray levels: the LUT lookup fused with the screen product
            kernels.window_field(self.lut_field, slm_field, screen[self.window_in_screen], g[:w0])
        else:
            np.multiply(slm_field, screen[self.window_in_screen], out=g[:w0])
        g[w0:] = 0
        a = np.asarray(sfft.fft(g, axis=0, workers=WORKERS, overwrite_x=True))[pr.rows]
        b = np.asarray(sfft.fft(a, n=n1, axis=1, workers=WORKERS, overwrite_x=True))[:, pr.cols]
        b *= pr.transfer  # iris × H_z, with the window's offset on the grid as a phase ramp
        x = np.zeros((len(pr.rows), n1), np.complex64)
        x[:, pr.cols] = b
        y = np.asarray(sfft.ifft(x, axis=1, workers=WORKERS, overwrite_x=True))[:, plan.roi[1]]
        z = self._work("z", (n0, y.shape[1]))
        kernels.clear(z)  # the last frame's inverse FFT ran in place
        z[pr.rows] = y
        return np.asarray(sfft.ifft(z, axis=0, workers=WORKERS, overwrite_x=True))[plan.roi[0]]

    def irradiance(self, slm_field: np.ndarray, diffuser: str, distance_mm: float, roi: Px2 | None,
                   drift: Drift = NO_DRIFT, grid_roi: Px2 | None = None,
                   grid: Px2 | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """The noiseless camera irradiance over ``roi`` (float32), or over the whole grid if None.

        ``grid_roi`` picks the grid when ``roi`` is None (default: the window); ``grid`` forces a
        grid shape (default: the rig's one grid for the ROI); ``out`` (float32, the ROI's shape)
        receives it instead of a new array.
        """
        if roi is not None:
            field = self._roi_field(slm_field, diffuser, distance_mm, roi, drift, grid)
        else:
            plan = self.plan(grid_roi or self.geo.window, grid)
            field = self.camera_field(self.diffuser_field(slm_field, diffuser, plan, drift),
                                      distance_mm, plan)
        return kernels.intensity(field, out)  # |E|² = re·re + im·im in float32, one compiled pass

    def light_share(self, diffuser: str, distance_mm: float, roi: Px2,
                    gray: np.ndarray | None = None) -> float:
        """Share of the light leaving the SLM window that reaches the camera ROI."""
        if gray is None:
            gray = np.zeros(self.geo.window, np.uint8)
        irr = self.irradiance(self.slm_field(gray), diffuser, distance_mm, roi)
        return float(irr.sum(dtype=np.float64)) / float(np.prod(self.geo.window))

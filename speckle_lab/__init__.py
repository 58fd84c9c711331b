"""speckle-lab: acquisition and SpT UNet reconstruction for imaging through scattering media.

From Python, ``import speckle_lab as sl`` gives the API of :mod:`speckle_lab.api` (``sl.open_rig``,
``sl.plan``, ``sl.acquire``, ``sl.open_run``, ``sl.train``, ``sl.evaluate``, ``sl.predict`` and
the exception classes); the names load on first use, so ``import speckle_lab`` stays fast. The
console command lives in :mod:`speckle_lab.cli`; the work lives in the packages below it
(docs/design.md, "Layers").
"""

__version__ = "0.1.0"

_API = ("DeviceError", "LabRig", "NotAvailableError", "PairEvent", "Plan", "RunData", "RunStopped",
        "Selection", "UserError", "acquire", "evaluate", "open_rig", "open_run", "plan", "predict", "train")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from speckle_lab import api

        return getattr(api, name)
    raise AttributeError(f"module 'speckle_lab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

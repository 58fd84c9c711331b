"""speckle-lab: acquisition and SpT UNet reconstruction for imaging through scattering media.

The console command lives in :mod:`speckle_lab.cli`; the work lives in the top-level packages
``hardware``, ``acquisition``, ``protocols`` and ``reconstruction``.
"""

__version__ = "0.1.0"

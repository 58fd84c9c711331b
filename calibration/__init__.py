"""Calibrating a rig, and fitting the simulated rig to it (docs/calibration.md).

- :mod:`.phase`: ``speckle-lab calibrate phase``, the SLM's gray → phase curve and its π level;
- :mod:`.settle`: ``speckle-lab calibrate settle``, the liquid crystal's settle time;
- :mod:`.twin_stats` and :mod:`.twin`: ``speckle-lab calibrate twin``, a captured run's speckle
  statistics and the simulated rig whose statistics match them;
- :mod:`.common`: opening the rig through its empty slot, exposure checks, progress, reports.

This package sits beside ``acquisition``: it drives the rig's devices through their interfaces
(hardware.interfaces) and never imports ``hardware.sim`` directly.
"""

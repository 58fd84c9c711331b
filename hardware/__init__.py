"""Device interfaces, real drivers (``hardware.drivers``) and the simulated rig (``hardware.sim``)."""

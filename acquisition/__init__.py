"""Running a protocol on a rig: faces, binarisation, exposure, stability, the engine and the dataset."""

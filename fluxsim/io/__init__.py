"""fluxsim.io: files fluxsim reads and writes: the zarr store of a study (:mod:`~fluxsim.io.store`) and measured
core-displacement curves (:mod:`~fluxsim.io.observations`). Reads the study's plain specs, never the app's config."""

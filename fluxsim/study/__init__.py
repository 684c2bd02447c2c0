"""fluxsim.study: a study of many simulations as plain data (:mod:`~fluxsim.study.spec`) and its execution in vmapped,
sharded blocks (:mod:`~fluxsim.study.sweep`). jax and numpy only: no hydra, xarray or zarr."""

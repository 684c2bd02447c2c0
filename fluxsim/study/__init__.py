"""fluxsim.study: a study of many simulations as plain data (:mod:`~fluxsim.study.spec`), its chunk planning
(:mod:`~fluxsim.study.plan`: blocks, shards, batch size, memory budget), its execution in vmapped, sharded batches
(:mod:`~fluxsim.study.batch`) and what is kept of each point (:mod:`~fluxsim.study.extract`). jax and numpy only: no
hydra, xarray or zarr."""

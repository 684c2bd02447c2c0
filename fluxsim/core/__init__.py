"""fluxsim.core: the numerical core on any particle outline (pure JAX and numpy; no hydra, xarray or zarr).

Outlines are meshed once on the host into static arrays; the solver integrates the vertex-centred finite-volume
system in Kirchhoff form with error-controlled stabilised explicit steps. See docs/model.md for the equations.
"""

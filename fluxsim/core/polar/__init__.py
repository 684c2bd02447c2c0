"""fluxsim.core.polar: the polar-grid solver of a disk (grid, finite-volume operators, block solves, BDF2 stepper,
core metrics, ``simulate``). Pure JAX and numpy; a peer of the mesh core in :mod:`fluxsim.core` (neither imports
the other)."""

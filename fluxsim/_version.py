"""The fluxsim version (stored in every zarr store and fit report; a store written by another version is refused)."""

__version__ = "0.1.0"

"""Floating-point precision of JAX for fluxsim: an explicit, documented, process-wide choice.

JAX computes in float32 unless ``jax_enable_x64`` is on, and the switch is global to the process. fluxsim's solver
defaults to float64 (``Numerics.dtype``; its accuracy is validated there), so the front doors that run it switch
float64 on when they start: :func:`fluxsim.run` and the ``fluxsim`` / ``fluxsim fit`` commands. ``import fluxsim``
changes nothing. Code that calls the lower-level :func:`fluxsim.simulate`, :mod:`fluxsim.fit` or the study modules
directly calls :func:`enable_float64` first (or sets ``JAX_ENABLE_X64=1``); the solver refuses float64 numerics with
x64 off and says how to switch it on. ``Numerics(dtype="float32")`` needs neither.
"""

from __future__ import annotations

import jax

#: The message of a float64 computation asked for while JAX computes in float32.
FLOAT64_OFF = ("numerics.dtype = 'float64' needs 64-bit floats in JAX, which are off in this process: call "
               "fluxsim.enable_float64() (or set JAX_ENABLE_X64=1) before building parameters, or use "
               "Numerics(dtype='float32')")


def float64_enabled() -> bool:
    """Whether JAX computes in 64-bit floats in this process (``jax_enable_x64``)."""
    return bool(jax.config.jax_enable_x64)


def enable_float64() -> None:
    """Switch JAX to 64-bit floats for the whole process (idempotent).

    Call it before creating arrays: arrays made while x64 was off stay 32-bit.
    """
    jax.config.update("jax_enable_x64", True)

"""fluxsim.model: the inputs of a simulation (catalogue, checks, material, diffusivity laws, surface models, protocol
steps) and the :class:`~fluxsim.model.params.Params` pytree they build. jax and numpy only; no solver."""

"""fluxsim.imaging: synthetic operando images of the particle and their analysis (:mod:`~fluxsim.imaging.images`)."""

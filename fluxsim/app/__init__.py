"""fluxsim.app: the command line: hydra config validated into a job (:mod:`~fluxsim.app.config`), ``fluxsim`` /
``fluxsim fit`` (:mod:`~fluxsim.app.cli`, :mod:`~fluxsim.app.fit_cli`) and the figures of a store
(:mod:`~fluxsim.app.plots`)."""

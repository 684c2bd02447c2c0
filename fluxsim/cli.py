"""The ``fluxsim`` console script of an install made before the package was layered (issue 10).

``pyproject.toml`` now points the script at :func:`fluxsim.app.cli.main`; this module keeps an existing install's
generated script (``from fluxsim.cli import main``) working until it is reinstalled. Import from :mod:`fluxsim.app.cli`.
"""

from fluxsim.app.cli import main

__all__ = ["main"]

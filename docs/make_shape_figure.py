"""Regenerate docs/figures/ellipse-snapshots.png by running the README's "Particles of any shape" example.

The figure is what the README's code draws: this script runs that python block (the first after the heading) in
docs/figures/, so the example and the figure cannot drift apart. Usage: ``python docs/make_shape_figure.py``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEADING = "## Particles of any shape"


def example_code() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index(HEADING):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def main() -> None:
    out = REPO / "docs" / "figures"
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(out)
    exec(compile(example_code(), "README.md (Particles of any shape)", "exec"), {"__name__": "__main__"})
    print(out / "ellipse-snapshots.png")


if __name__ == "__main__":
    main()

"""No module of fluxsim imports from a layer above its own, there are no import cycles, and the lower layers stay light.

The layers (docs/architecture.md): model < core < api < study < io < fit < imaging < app < the package face. Walks
every ``fluxsim/**/*.py`` with ``ast``, module-level and function-level imports alike (the CLI, plots and images
import lazily).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fluxsim"

#: Rank of each layer, by the longest matching module prefix; a module may import only its own rank or lower.
RANKS = {
    "fluxsim._version": 0, "fluxsim.precision": 0, "fluxsim.model.catalogue": 0,
    "fluxsim.model": 1,
    "fluxsim.core": 2,
    "fluxsim.api": 3,
    "fluxsim.study": 4,
    "fluxsim.io": 5,
    "fluxsim.fit": 6,
    "fluxsim.imaging": 7,
    "fluxsim.app": 8,
    "fluxsim": 9,  # the package face (and the old console-script path fluxsim.cli): nothing inside imports it
}
#: Third-party packages and the lowest rank allowed to import them (light core, no app in the library).
HEAVY = {"hydra": 8, "omegaconf": 8, "xarray": 5, "zarr": 5, "matplotlib": 5, "optax": 6, "tifffile": 7}
#: The two solvers are peers: the polar solver and the mesh core do not import each other.
POLAR = "fluxsim.core.polar"
MESH = ("fluxsim.core.outline", "fluxsim.core.mesh", "fluxsim.core.fv", "fluxsim.core.rim",
        "fluxsim.core.observables", "fluxsim.core.rkl", "fluxsim.core.solve")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    relative = ROOT / Path(*name.split("."))
    return relative.with_suffix(".py").exists() or (relative / "__init__.py").exists()


def rank(module: str) -> int:
    best = max((p for p in RANKS if module == p or module.startswith(p + ".")), key=len)
    return RANKS[best]


def imports(path: Path, *, runtime_only: bool = False) -> set[str]:
    """Every module ``path`` imports (``from fluxsim import x`` counts as ``fluxsim.x`` when x is a module).

    ``runtime_only``: leave out imports under ``if TYPE_CHECKING:`` (annotations; they cannot form a runtime cycle).
    """
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and ast.unparse(node.test) in (
        "TYPE_CHECKING", "typing.TYPE_CHECKING") for stmt in node.body for n in ast.walk(stmt)}
    found = set()
    for node in ast.walk(tree):
        if runtime_only and id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (use absolute fluxsim.* imports)"
            submodules = {f"{node.module}.{a.name}" for a in node.names if is_module(f"{node.module}.{a.name}")}
            found |= submodules or {node.module}
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))
GRAPH = {module_name(p): {m for m in imports(p) if m.startswith("fluxsim")} for p in MODULES}
RUNTIME_GRAPH = {module_name(p): {m for m in imports(p, runtime_only=True) if m.startswith("fluxsim")} for p in MODULES}


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_imports_only_from_its_layer_or_below(path):
    me = module_name(path)
    upward = sorted(m for m in GRAPH[me] if m != "fluxsim" and rank(m) > rank(me))
    assert not upward, f"{me} (rank {rank(me)}) imports from above: {upward}"
    if me != "fluxsim":
        assert "fluxsim" not in GRAPH[me], f"{me} imports the package face (import the module that defines the name)"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_lower_layers_import_no_heavy_packages(path):
    me = module_name(path)
    heavy = sorted(m for m in imports(path) if m.split(".")[0] in HEAVY and rank(me) < HEAVY[m.split(".")[0]])
    assert not heavy, f"{me} (rank {rank(me)}) imports {heavy}"


def test_no_import_cycles():
    """Depth-first search over the runtime import graph (package faces included): a back edge is a cycle."""
    state: dict[str, str] = {}
    cycles = []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(RUNTIME_GRAPH.get(node, ())):
            if nxt == node or nxt not in RUNTIME_GRAPH:
                continue
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for module in sorted(RUNTIME_GRAPH):
        if module not in state:
            visit(module, [module])
    assert not cycles, f"import cycles: {cycles}"


def test_the_walk_sees_the_layers():
    """The test would notice an upward import: the walk finds the app's known lazy imports and every layer."""
    assert "fluxsim.app.plots" in GRAPH["fluxsim.app.cli"]  # imported inside a function
    assert {rank(m) for m in GRAPH} == set(range(10))


def test_the_two_solvers_are_peers():
    for me, used in GRAPH.items():
        if me.startswith(POLAR):
            assert not [m for m in used if m.startswith(MESH)], me
        if me.startswith(MESH):
            assert not [m for m in used if m.startswith(POLAR)], me
    assert not [m for m in GRAPH["fluxsim.core"] if m.startswith(POLAR)], "fluxsim.core must not import core.polar"


def test_import_fluxsim_stays_light():
    code = f"import sys, fluxsim; print(sorted(m for m in {tuple(HEAVY)!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"

"""Microscopy asymmetry measurements: the CSV format read by ``fluxsim fit`` and written by fluxsim.imaging.

One row per measurement; units live in the column names (as everywhere in fluxsim). Columns:

=====================================  ========  =================================================================
column                                 required  meaning
=====================================  ========  =================================================================
``particle``                           no        particle id (text); rows without the column belong to particle ``0``
``rate_mA_per_g``                      yes       specific current of the charge [mA g-1], > 0
``time_s``                             one of    time since the start of the charge [s], >= 0
``capacity_mAh_per_g``                 one of    passed capacity [mAh g-1], >= 0; converted with the rate:
                                                 ``time_s = 3600 capacity / rate``
``d_nm``                               yes       core offset d [nm], >= 0: distance between the particle's and the
                                                 Li-rich core's centres of mass (negative noise near 0: see
                                                 ``negative_d`` of :func:`from_columns`)
``d_sigma_nm``                         no        standard uncertainty of d [nm] (of each Cartesian component when a
                                                 direction is given), > 0
``direction_rad`` / ``direction_deg``  no        direction of the core offset, counter-clockwise from +x (image
                                                 x to the right, y up); makes the arc angle identifiable
``core_fraction``                      no        Li-rich core area / particle area [-], in [0, 1]
``core_fraction_sigma``                no        its standard uncertainty [-], > 0
``radius_m`` / ``radius_um`` /         no        particle size (per particle: the same on all its rows); without it
``radius_nm`` / ``diameter_m`` /                 the fit uses the model's default radius
``diameter_um`` / ``diameter_nm``
=====================================  ========  =================================================================

A *series* is the rows of one particle at one rate. Within a series times must be non-decreasing and >= 0. Any
other column without a recognised quantity prefix (``note``, ``frame``, ...) is ignored; a recognised quantity with
an unsupported unit (``time_min``, ``d_um``) is an error that names the expected column. Errors name the file line
(the header is line 1) and the column.

Example::

    particle,rate_mA_per_g,time_s,d_nm,d_sigma_nm,diameter_nm
    A,100,60,12.5,10,2400
    A,100,120,31.0,10,2400
    A,400,15,9.8,10,2400

The module needs only numpy and the standard library (no pandas).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

#: Accepted columns per quantity, with the factor that converts the column's unit to the canonical unit.
UNITS: dict[str, dict[str, float]] = {
    "rate": {"rate_mA_per_g": 1.0},
    "time": {"time_s": 1.0},
    "capacity": {"capacity_mAh_per_g": 1.0},
    "d": {"d_nm": 1.0},
    "d_sigma": {"d_sigma_nm": 1.0},
    "direction": {"direction_rad": 1.0, "direction_deg": math.pi / 180.0},
    "core_fraction": {"core_fraction": 1.0},
    "core_fraction_sigma": {"core_fraction_sigma": 1.0},
    "radius": {"radius_m": 1.0, "radius_um": 1e-6, "radius_nm": 1e-9},
    "diameter": {"diameter_m": 0.5, "diameter_um": 0.5e-6, "diameter_nm": 0.5e-9},
}
#: Prefixes that identify a quantity, longest first (so ``d_sigma_um`` is read as d_sigma, not d).
_PREFIXES = sorted(UNITS, key=len, reverse=True)
PARTICLE = "particle"
#: Particle id used when the file has no ``particle`` column.
DEFAULT_PARTICLE = "0"


#: Uncertainty of d [nm] assumed where the file gives no ``d_sigma_nm`` (the fit's weights, the negative-d noise test).
DEFAULT_D_SIGMA_NM = 10.0
#: A negative d is accepted as noise around 0 when it lies within this many standard uncertainties of 0.
NEGATIVE_D_SIGMAS = 3.0
#: What :func:`from_columns` / :func:`read_csv` do with negative d (``negative_d=``; ``fluxsim fit --negative-d``).
NEGATIVE_D_CHOICES = ("noise", "drop", "refuse")


class ObservationError(ValueError):
    """A malformed observations file or table; the message names the line and column."""


class ObservationWarning(UserWarning):
    """Measurements kept or dropped with a note (negative d accepted as noise, or dropped)."""


@dataclasses.dataclass(frozen=True)
class Series:
    """The measurements of one particle at one rate, sorted by time as in the file.

    Attributes:
        particle: particle id.
        rate_mA_per_g: specific current [mA g-1].
        time_s: measurement times [s], shape ``(n,)``.
        d_nm: core offsets [nm], ``(n,)``.
        d_sigma_nm: their uncertainties [nm] or None.
        direction_rad: offset directions [rad] or None.
        core_fraction: core area fractions or None.
        core_fraction_sigma: their uncertainties or None.
        lines: file line of each measurement (for messages), ``(n,)``.
    """

    particle: str
    rate_mA_per_g: float
    time_s: np.ndarray
    d_nm: np.ndarray
    d_sigma_nm: np.ndarray | None = None
    direction_rad: np.ndarray | None = None
    core_fraction: np.ndarray | None = None
    core_fraction_sigma: np.ndarray | None = None
    lines: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.time_s.shape[0])

    @property
    def capacity_mAh_per_g(self) -> np.ndarray:
        """Passed capacity at each measurement [mAh g-1]."""
        return self.time_s * self.rate_mA_per_g / 3600.0


@dataclasses.dataclass(frozen=True)
class Observations:
    """All series of a file, and the particles' radii.

    Attributes:
        series: one :class:`Series` per (particle, rate), in order of first appearance.
        radius_m: particle id -> radius [m] (None where the file gives no size).
        source: where the data came from (a path or a description).
    """

    series: tuple[Series, ...]
    radius_m: Mapping[str, float | None]
    source: str = ""

    @property
    def particles(self) -> list[str]:
        """Particle ids in order of first appearance."""
        return list(dict.fromkeys(s.particle for s in self.series))

    @property
    def rates_mA_per_g(self) -> list[float]:
        return [s.rate_mA_per_g for s in self.series]

    @property
    def n_points(self) -> int:
        return sum(len(s) for s in self.series)

    @property
    def has_direction(self) -> bool:
        return any(s.direction_rad is not None for s in self.series)

    @property
    def has_core_fraction(self) -> bool:
        return any(s.core_fraction is not None for s in self.series)

    def select(self, particle: str) -> Observations:
        """The observations of one particle."""
        particle = str(particle)
        if particle not in self.radius_m:
            raise KeyError(f"no particle {particle!r} in {self.source or 'the observations'}; have {self.particles}")
        chosen = tuple(s for s in self.series if s.particle == particle)
        return Observations(chosen, {particle: self.radius_m[particle]}, self.source)

    def __repr__(self) -> str:
        parts = ", ".join(f"{s.particle}@{s.rate_mA_per_g:g} mA/g x{len(s)}" for s in self.series)
        return f"Observations({parts}; source={self.source!r})"


# ---------------------------------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------------------------------
def _classify(columns: Iterable[str]) -> dict[str, str]:
    """Map quantity -> column name; raise on unsupported units and on two columns for one quantity."""
    found: dict[str, str] = {}
    for column in columns:
        if column == PARTICLE:
            continue
        quantity = None
        for prefix in _PREFIXES:
            if column in UNITS[prefix]:
                quantity = prefix
                break
        if quantity is None:
            for prefix in _PREFIXES:
                if column.startswith(prefix + "_") or column == prefix:
                    expected = " or ".join(f"'{c}'" for c in UNITS[prefix])
                    if prefix == "time":
                        expected += " (or 'capacity_mAh_per_g')"
                    raise ObservationError(
                        f"column {column!r}: unsupported unit for {prefix.replace('_', ' ')}; expected {expected}"
                    )
            continue  # not a quantity fluxsim reads (annotation): ignored
        if quantity in found:
            raise ObservationError(f"columns {found[quantity]!r} and {column!r} both give the {quantity}; keep one")
        found[quantity] = column
    if "radius" in found and "diameter" in found:
        raise ObservationError(f"columns {found['radius']!r} and {found['diameter']!r} both give the particle size")
    return found


def _number(text: str, column: str, line: int) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ObservationError(f"line {line}, column {column!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ObservationError(f"line {line}, column {column!r}: value is {text.strip() or 'empty'} (NaN/inf are not "
                               "allowed; drop the row instead)")
    return value


def from_columns(columns: Mapping[str, Iterable], source: str = "", first_line: int = 2,
                 negative_d: str = "noise") -> Observations:
    """Build :class:`Observations` from a table of columns (names as in the CSV format), with every check.

    Args:
        columns: column name -> sequence of values (strings or numbers), all of equal length.
        source: description used in messages.
        first_line: file line of the first row (2 for a CSV with one header line).
        negative_d: what to do with rows whose d is negative (measured noise around 0 at early times):
            ``"noise"`` (default) keeps them unchanged as signed noise when ``-d`` is within
            :data:`NEGATIVE_D_SIGMAS` standard uncertainties (``d_sigma_nm``, else :data:`DEFAULT_D_SIGMA_NM`)
            and refuses larger negatives; ``"drop"`` drops every negative row; ``"refuse"`` refuses any. Kept or
            dropped rows are listed in an :class:`ObservationWarning`.

    Raises:
        ObservationError: missing columns, non-numbers, NaN, out-of-range values, negative or unsorted times,
            unknown units, inconsistent particle sizes.
    """
    where = f" in {source}" if source else ""
    names = list(columns)
    data = {k: list(v) for k, v in columns.items()}
    lengths = {len(v) for v in data.values()}
    if len(lengths) > 1:
        raise ObservationError(f"columns have different lengths{where}: { {k: len(v) for k, v in data.items()} }")
    n = lengths.pop() if lengths else 0
    found = _classify(names)
    missing = [q for q in ("rate", "d") if q not in found]
    if "time" not in found and "capacity" not in found:
        missing.append("time")
    if missing:
        wanted = {"rate": "'rate_mA_per_g'", "d": "'d_nm'", "time": "'time_s' or 'capacity_mAh_per_g'"}
        raise ObservationError(f"missing column(s){where}: " + ", ".join(wanted[m] for m in missing)
                               + f" (have {names})")
    if "time" in found and "capacity" in found:
        raise ObservationError(f"give either 'time_s' or 'capacity_mAh_per_g'{where}, not both")
    if "core_fraction_sigma" in found and "core_fraction" not in found:
        raise ObservationError(f"column 'core_fraction_sigma' without 'core_fraction'{where}")
    if n == 0:
        raise ObservationError(f"no measurements{where}")

    lines = np.arange(first_line, first_line + n)
    values: dict[str, np.ndarray] = {}
    for quantity, column in found.items():
        factor = UNITS[quantity][column]
        values[quantity] = np.array([_number(str(v), column, int(ln)) for v, ln in zip(data[column], lines)]) * factor
    particles = [str(p).strip() for p in data[PARTICLE]] if PARTICLE in data else [DEFAULT_PARTICLE] * n
    for p, ln in zip(particles, lines):
        if not p:
            raise ObservationError(f"line {ln}, column 'particle': empty particle id")

    def check(quantity, ok, rule):
        if quantity in values:
            bad = np.flatnonzero(~ok(values[quantity]))
            if bad.size:
                k = bad[0]
                raise ObservationError(f"line {lines[k]}, column {found[quantity]!r}: {data[found[quantity]][k]!r} "
                                       f"must be {rule}" + (f" ({bad.size} rows)" if bad.size > 1 else ""))

    check("rate", lambda v: v > 0, "> 0")
    check("time", lambda v: v >= 0, ">= 0 (times are measured from the start of the charge)")
    check("capacity", lambda v: v >= 0, ">= 0")
    check("d_sigma", lambda v: v > 0, "> 0")
    check("core_fraction", lambda v: (v >= 0) & (v <= 1), "in [0, 1]")
    check("core_fraction_sigma", lambda v: v > 0, "> 0")
    check("radius", lambda v: v > 0, "> 0")
    check("diameter", lambda v: v > 0, "> 0")

    keep = _negative_d(values, found["d"], data[found["d"]], lines, negative_d, where)
    if not keep.all():
        values = {q: v[keep] for q, v in values.items()}
        data = {k: [x for x, kept in zip(v, keep) if kept] for k, v in data.items()}
        particles = [p for p, kept in zip(particles, keep) if kept]
        lines = lines[keep]
        if not keep.any():
            raise ObservationError(f"no measurements{where} left after dropping the rows with negative d")
    time_s = values["time"] if "time" in values else values["capacity"] * 3600.0 / values["rate"]
    size = values.get("radius", values.get("diameter"))
    size_column = found.get("radius", found.get("diameter"))

    radius: dict[str, float | None] = {}
    order: dict[tuple[str, float], list[int]] = {}
    for k, (p, rate) in enumerate(zip(particles, values["rate"])):
        order.setdefault((p, float(rate)), []).append(k)
        if p not in radius:
            radius[p] = None if size is None else float(size[k])
        elif size is not None and not math.isclose(radius[p], float(size[k]), rel_tol=1e-9):
            first = next(i for i, q in enumerate(particles) if q == p)
            raise ObservationError(
                f"line {lines[k]}, column {size_column!r}: particle {p!r} has size {data[size_column][k]!r} here but "
                f"{data[size_column][first]!r} on line {lines[first]} (the size must be the same on all its rows)"
            )

    series = []
    for (p, rate), rows in order.items():
        rows = np.asarray(rows)
        t = time_s[rows]
        back = np.flatnonzero(np.diff(t) < 0)
        if back.size:
            k = back[0]
            column = found.get("time", found.get("capacity"))
            raise ObservationError(
                f"line {lines[rows[k + 1]]}, column {column!r}: time {t[k + 1]:g} s comes after {t[k]:g} s on line "
                f"{lines[rows[k]]} in the series of particle {p!r} at {rate:g} mA/g (sort each series by time)"
            )

        picked = {q: (values[q][rows].copy() if q in values else None)
                  for q in ("d_sigma", "direction", "core_fraction", "core_fraction_sigma")}
        series.append(Series(
            particle=p, rate_mA_per_g=rate, time_s=t.copy(), d_nm=values["d"][rows].copy(),
            d_sigma_nm=picked["d_sigma"], direction_rad=picked["direction"], core_fraction=picked["core_fraction"],
            core_fraction_sigma=picked["core_fraction_sigma"], lines=lines[rows],
        ))
    return Observations(tuple(series), radius, source)


def _negative_d(values: dict, column: str, texts: list, lines: np.ndarray, mode: str, where: str) -> np.ndarray:
    """Apply the ``negative_d`` policy (see :func:`from_columns`); returns the mask of the rows kept."""
    if mode not in NEGATIVE_D_CHOICES:
        raise ObservationError(f"negative_d = {mode!r} must be one of {', '.join(map(repr, NEGATIVE_D_CHOICES))}")
    d = values["d"]
    negative = d < 0
    if not negative.any():
        return np.ones(d.shape, bool)
    sigma = values.get("d_sigma", np.full(d.shape, DEFAULT_D_SIGMA_NM))

    def listing(mask):
        rows = [f"line {ln} ({column} = {texts[k]!r})" for k, ln in zip(np.flatnonzero(mask), lines[mask])]
        return ", ".join(rows[:10]) + (f", ... ({len(rows)} rows)" if len(rows) > 10 else "")

    too_negative = negative & (-d > NEGATIVE_D_SIGMAS * sigma) if mode == "noise" else negative
    if mode != "drop" and too_negative.any():
        k = int(np.argmax(too_negative))
        rule = ">= 0 (a distance)" if mode == "refuse" else (
            f">= 0 (a distance), or >= -{NEGATIVE_D_SIGMAS:g} sigma = {-NEGATIVE_D_SIGMAS * sigma[k]:g} nm as noise "
            "around 0")
        raise ObservationError(
            f"line {lines[k]}, column {column!r}: {texts[k]!r} must be {rule}{where}; refused: "
            f"{listing(too_negative)}. "
            "Allowed: negative_d = 'noise' (keep negatives within the noise), 'drop' (drop every negative row) or "
            "'refuse' (fluxsim fit --negative-d ...)")
    if mode == "drop":
        warnings.warn(f"dropped {int(negative.sum())} row(s) with negative d{where}: {listing(negative)}",
                      ObservationWarning, stacklevel=3)
        return ~negative
    warnings.warn(f"kept {int(negative.sum())} row(s) with negative d{where} as noise around 0 (within "
                  f"{NEGATIVE_D_SIGMAS:g} standard uncertainties): {listing(negative)}", ObservationWarning,
                  stacklevel=3)
    return np.ones(d.shape, bool)


def read_csv(path: str | Path, negative_d: str = "noise") -> Observations:
    """Read an observations CSV (format in the module docstring); errors name the line and the column.

    ``negative_d``: the policy for negative d (see :func:`from_columns`).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"observations file {str(path)!r} does not exist")
    if not path.is_file():
        raise ObservationError(f"observations file {str(path)!r} is a directory or not a regular file: give the CSV "
                               "file itself")
    with path.open(newline="") as fh:
        rows = [row for row in csv.reader(fh)]
    rows = [r for r in rows if r and not (len(r) == 1 and not r[0].strip())]
    if not rows:
        raise ObservationError(f"{path} is empty (expected a header line and one row per measurement)")
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise ObservationError(f"{path}: duplicate column(s) {dup}")
    columns: dict[str, list[str]] = {h: [] for h in header}
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ObservationError(f"{path}: line {i} has {len(row)} fields, the header has {len(header)}")
        for h, v in zip(header, row):
            columns[h].append(v.strip())
    return from_columns(columns, source=str(path), negative_d=negative_d)


def to_columns(observations: Observations) -> dict[str, list]:
    """The observations as CSV columns (canonical units: seconds, nm, rad, metres)."""
    cols: dict[str, list] = {PARTICLE: [], "rate_mA_per_g": [], "time_s": [], "d_nm": []}
    optional = {
        "d_sigma_nm": "d_sigma_nm",
        "direction_rad": "direction_rad",
        "core_fraction": "core_fraction",
        "core_fraction_sigma": "core_fraction_sigma",
    }
    present = {k for k, attr in optional.items() if any(getattr(s, attr) is not None for s in observations.series)}
    for k, attr in optional.items():
        if k in present:
            missing = [s for s in observations.series if getattr(s, attr) is None]
            if missing:
                raise ObservationError(f"{k} is given for some series but not for particle {missing[0].particle!r} at "
                                       f"{missing[0].rate_mA_per_g:g} mA/g; the CSV needs it on every row")
            cols[k] = []
    sizes = observations.radius_m
    with_size = any(sizes.get(s.particle) is not None for s in observations.series)
    if with_size:
        if any(sizes.get(s.particle) is None for s in observations.series):
            raise ObservationError("radius_m is known for some particles but not all; the CSV needs it on every row")
        cols["radius_m"] = []
    for s in observations.series:
        n = len(s)
        cols[PARTICLE] += [s.particle] * n
        cols["rate_mA_per_g"] += [s.rate_mA_per_g] * n
        cols["time_s"] += list(s.time_s)
        cols["d_nm"] += list(s.d_nm)
        for k, attr in optional.items():
            if k in present:
                cols[k] += list(getattr(s, attr))
        if with_size:
            cols["radius_m"] += [sizes[s.particle]] * n
    return cols


def write_csv(observations: Observations, path: str | Path) -> Path:
    """Write observations in the CSV format (``repr`` of floats: exact round trip). Returns the path."""
    cols = to_columns(observations)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(cols)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for row in zip(*(cols[k] for k in names)):
            writer.writerow([v if isinstance(v, str) else repr(float(v)) for v in row])
    return path


def make_observations(
    rate_mA_per_g: float,
    time_s,
    d_nm,
    *,
    particle: str = DEFAULT_PARTICLE,
    d_sigma_nm=None,
    direction_rad=None,
    core_fraction=None,
    core_fraction_sigma=None,
    radius_m: float | None = None,
) -> Observations:
    """Observations of one series from arrays (scalars broadcast), through the same checks as :func:`read_csv`."""
    t = np.atleast_1d(np.asarray(time_s, float))
    n = t.shape[0]
    cols: dict[str, list] = {PARTICLE: [particle] * n, "rate_mA_per_g": [rate_mA_per_g] * n, "time_s": list(t),
                             "d_nm": list(np.broadcast_to(np.asarray(d_nm, float), (n,)))}
    for name, value in (("d_sigma_nm", d_sigma_nm), ("direction_rad", direction_rad),
                        ("core_fraction", core_fraction), ("core_fraction_sigma", core_fraction_sigma),
                        ("radius_m", radius_m)):
        if value is not None:
            cols[name] = list(np.broadcast_to(np.asarray(value, float), (n,)))
    return from_columns(cols, source=f"particle {particle} at {rate_mA_per_g:g} mA/g", first_line=1)


def combine(*parts: Observations, source: str = "") -> Observations:
    """Concatenate observations (e.g. one per rate); a particle's size must agree between parts."""
    series, radius = [], {}
    for obs in parts:
        for p, r in obs.radius_m.items():
            if p in radius and radius[p] is not None and r is not None and not math.isclose(radius[p], r):
                raise ObservationError(f"particle {p!r} has radius {radius[p]} m in one part and {r} m in another")
            if radius.get(p) is None:
                radius[p] = r
        series += list(obs.series)
    keys = [(s.particle, s.rate_mA_per_g) for s in series]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ObservationError(f"particle {dup[0]!r} at {dup[1]:g} mA/g appears in more than one part")
    return Observations(tuple(series), radius, source or " + ".join(o.source for o in parts if o.source))

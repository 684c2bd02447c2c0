"""The observations CSV format (fluxsim.io.observations): reading, checks with clear messages, round trips."""

import math

import numpy as np
import pytest

from fluxsim.io import observations as obs

GOOD = """particle,rate_mA_per_g,time_s,d_nm,d_sigma_nm,direction_deg,core_fraction,diameter_nm,note
A,100,60,12.5,10,90,0.9,2400,first
A,100,120,31.0,10,95,0.7,2400,
A,400,15,9.8,10,80,0.95,2400,
B,100,30,5.0,5,0,0.9,2000,
"""


def write(tmp_path, text, name="obs.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_series_units_and_metadata(tmp_path):
    o = obs.read_csv(write(tmp_path, GOOD))
    assert o.particles == ["A", "B"]
    assert [(s.particle, s.rate_mA_per_g, len(s)) for s in o.series] == [("A", 100.0, 2), ("A", 400.0, 1),
                                                                         ("B", 100.0, 1)]
    a100 = o.series[0]
    np.testing.assert_allclose(a100.time_s, [60, 120])
    np.testing.assert_allclose(a100.direction_rad, np.deg2rad([90, 95]))
    np.testing.assert_allclose(a100.lines, [2, 3])  # file lines for messages (header = line 1)
    assert o.radius_m["A"] == pytest.approx(1.2e-6) and o.radius_m["B"] == pytest.approx(1.0e-6)
    assert o.select("B").n_points == 1
    with pytest.raises(KeyError, match="no particle 'C'"):
        o.select("C")


def test_capacity_column_is_converted_with_the_rate(tmp_path):
    o = obs.read_csv(write(tmp_path, "rate_mA_per_g,capacity_mAh_per_g,d_nm\n200,10,50\n200,20,80\n"))
    np.testing.assert_allclose(o.series[0].time_s, [180.0, 360.0])  # 3600 q / I
    np.testing.assert_allclose(o.series[0].capacity_mAh_per_g, [10, 20])
    assert o.particles == [obs.DEFAULT_PARTICLE]


def test_write_read_round_trip(tmp_path):
    o = obs.read_csv(write(tmp_path, GOOD))
    back = obs.read_csv(obs.write_csv(o, tmp_path / "out" / "again.csv"))
    assert back.particles == o.particles
    for s, t in zip(o.series, back.series):
        assert (s.particle, s.rate_mA_per_g) == (t.particle, t.rate_mA_per_g)
        for attr in ("time_s", "d_nm", "d_sigma_nm", "direction_rad", "core_fraction"):
            np.testing.assert_array_equal(getattr(s, attr), getattr(t, attr))
    assert back.radius_m == o.radius_m


@pytest.mark.parametrize(
    "text, message",
    [
        ("rate_mA_per_g,time_s\n100,60\n", r"missing column\(s\).*'d_nm'"),
        ("rate_mA_per_g,d_nm\n100,5\n", r"missing column\(s\).*'time_s' or 'capacity_mAh_per_g'"),
        ("time_s,d_nm\n60,5\n", r"missing column\(s\).*'rate_mA_per_g'"),
        ("rate_mA_per_g,time_s,d_nm\n100,60,5\n100,120,nan\n", r"line 3, column 'd_nm': value is nan"),
        ("rate_mA_per_g,time_s,d_nm\n100,60,5\n100,,7\n", r"line 3, column 'time_s': '' is not a number"),
        ("rate_mA_per_g,time_s,d_nm\n100,-1,5\n", r"line 2, column 'time_s': '-1' must be >= 0"),
        ("rate_mA_per_g,time_s,d_nm\n100,60,5\n100,30,7\n",
         r"line 3, column 'time_s': time 30 s comes after 60 s on line 2 .*sort each series by time"),
        ("rate_mA_per_g,time_min,d_nm\n100,1,5\n", r"column 'time_min': unsupported unit for time; expected 'time_s'"),
        ("rate_mA_per_g,time_s,d_um\n100,1,5\n", r"column 'd_um': unsupported unit for d; expected 'd_nm'"),
        ("rate_mA_per_g,time_s,d_nm\n0,60,5\n", r"line 2, column 'rate_mA_per_g': '0' must be > 0"),
        ("rate_mA_per_g,time_s,d_nm\n100,60,-50\n",
         r"line 2, column 'd_nm': '-50' must be >= 0 \(a distance\), or >= -3 sigma = -30 nm as noise around 0"),
        ("rate_mA_per_g,time_s,d_nm,core_fraction\n100,60,5,1.5\n", r"line 2, column 'core_fraction'.*in \[0, 1\]"),
        ("rate_mA_per_g,time_s,capacity_mAh_per_g,d_nm\n100,60,1,5\n", r"either 'time_s' or 'capacity_mAh_per_g'"),
        ("rate_mA_per_g,time_s,d_nm\n100,60\n", r"line 2 has 2 fields, the header has 3"),
        ("rate_mA_per_g,time_s,d_nm,d_nm\n100,60,5,5\n", r"duplicate column\(s\) \['d_nm'\]"),
        ("particle,rate_mA_per_g,time_s,d_nm,radius_nm\nA,100,60,5,1200\nA,100,90,5,1100\n",
         r"line 3, column 'radius_nm': particle 'A' has size '1100' here but '1200' on line 2"),
        ("", r"is empty"),
    ],
)
def test_malformed_files_name_line_and_column(tmp_path, text, message):
    with pytest.raises(obs.ObservationError, match=message):
        obs.read_csv(write(tmp_path, text))


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        obs.read_csv("/nonexistent/obs.csv")


def test_make_observations_and_combine():
    a = obs.make_observations(100, [10, 20], [1.0, 2.0], particle="p", radius_m=1e-6)
    b = obs.make_observations(400, [5, 6, 7], 3.0, particle="p", d_sigma_nm=4.0)
    both = obs.combine(a, b)
    assert both.rates_mA_per_g == [100.0, 400.0] and both.n_points == 5
    assert both.radius_m["p"] == 1e-6
    with pytest.raises(obs.ObservationError, match="appears in more than one part"):
        obs.combine(a, a)
    with pytest.raises(obs.ObservationError, match="must be >= 0"):
        obs.make_observations(100, [-1.0], [1.0])
    # CSV needs d_sigma on every row once any series has it
    with pytest.raises(obs.ObservationError, match="d_sigma_nm is given for some series"):
        obs.to_columns(both)
    assert math.isclose(both.series[1].capacity_mAh_per_g[0], 5 * 400 / 3600)

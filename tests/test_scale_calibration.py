"""Calibration: least-squares gains, the TOML write, and `caper-edge calibrate` end to end
against a pty scale whose cells have known offsets and gains."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from caper_edge import config
from caper_edge.errors import CaperError
from caper_edge.scale.calibration import apply, solve_gains, tare, write_calibration
from caper_edge.scale.loadcell import LoadCellModel, cell_split
from caper_edge.scale.ptysim import PtyScale

NS = 1_000_000_000
TRUE_OFFSETS = np.array([120_345.0, -54_321.0, 250_000.0, 7.0])
TRUE_GAINS = np.array([0.0481, 0.0522, 0.0467, 0.0535])
SPOTS = [(0.5, 0.5), (0.08, 0.08), (0.92, 0.08), (0.92, 0.92), (0.08, 0.92)]


def exact_counts(mass: float, pos) -> np.ndarray:
    return TRUE_OFFSETS + cell_split(mass, pos) / TRUE_GAINS


def test_noise_free_placements_give_the_exact_gains():
    means = np.array([exact_counts(1000.0, p) for p in SPOTS])
    sol = solve_gains(means, [1000.0] * 5, TRUE_OFFSETS)
    np.testing.assert_allclose(sol.gains, TRUE_GAINS, rtol=1e-10)
    np.testing.assert_allclose(sol.residuals_g, 0.0, atol=1e-7)
    assert sol.condition < 100


def test_tare_and_apply():
    raw = np.array([TRUE_OFFSETS + d for d in (-3.0, 0.0, 3.0)])
    np.testing.assert_allclose(tare(raw), TRUE_OFFSETS)
    np.testing.assert_allclose(apply(exact_counts(800.0, (0.3, 0.9)), TRUE_OFFSETS, TRUE_GAINS).sum(), 800.0)


def test_placements_that_cannot_separate_cells_are_refused():
    centre_only = np.array([exact_counts(1000.0, (0.5, 0.5))] * 5)
    with pytest.raises(CaperError, match="condition number"):
        solve_gains(centre_only, [1000.0] * 5, TRUE_OFFSETS)
    with pytest.raises(CaperError, match="3 placements cannot determine 4"):
        solve_gains(np.array([exact_counts(1000.0, p) for p in SPOTS[:3]]), [1000.0] * 3, TRUE_OFFSETS)


def test_backwards_cell_is_reported():
    means = np.array([exact_counts(1000.0, p) for p in SPOTS])
    means[:, 2] = 2 * TRUE_OFFSETS[2] - means[:, 2]        # cell 2 wired backwards
    with pytest.raises(CaperError, match="not all positive"):
        solve_gains(means, [1000.0] * 5, TRUE_OFFSETS)


def test_write_keeps_comments_and_other_keys(tmp_path):
    path = tmp_path / "cart.toml"
    path.write_text('# cart 17\n[scale]\nport = "/dev/caper-scale"  # udev name\n\n'
                    '[scale.calibration]\n# from the factory\noffsets = [0, 0, 0, 0]\ngains = [1, 1, 1, 1]\n'
                    '\n[scale.events]\nmin_delta_g = 4.0\n')
    write_calibration(path, TRUE_OFFSETS, TRUE_GAINS)
    text = path.read_text()
    for kept in ("# cart 17", '# udev name', "# from the factory", "min_delta_g = 4.0"):
        assert kept in text
    cfg = config.load(path).scale
    np.testing.assert_allclose(cfg.calibration.offsets, TRUE_OFFSETS)
    np.testing.assert_allclose(cfg.calibration.gains, TRUE_GAINS)
    assert cfg.port == "/dev/caper-scale" and cfg.events.min_delta_g == 4.0


def test_write_creates_file_and_sections(tmp_path):
    path = tmp_path / "new.toml"
    write_calibration(path, TRUE_OFFSETS, TRUE_GAINS)
    np.testing.assert_allclose(config.load(path).scale.calibration.gains, TRUE_GAINS)
    other = tmp_path / "other.toml"
    other.write_text("[preprocess]\npad_value = 0\n")
    write_calibration(other, TRUE_OFFSETS, TRUE_GAINS)
    loaded = config.load(other)
    assert loaded.preprocess.pad_value == 0
    np.testing.assert_allclose(loaded.scale.calibration.offsets, TRUE_OFFSETS)


class ReactiveScale:
    """A pty scale with the true calibration; moves the mass when the calibrate CLI asks."""

    def __init__(self, link: Path) -> None:
        self.model = LoadCellModel((TRUE_OFFSETS, TRUE_GAINS), seed=21, noise_g=1.5)
        self.sim = PtyScale(self.model.lines(0, 600 * NS, chunk_s=0.05), link=link).start()
        self.item: int | None = None

    def put(self, mass: float, pos) -> None:
        t = self.sim.now_ns() + 150_000_000             # lines up to ~50 ms ahead are rendered
        if self.item is not None:
            self.model.remove(t, self.item, duration_s=0.1, grip_g=0.0, ring_s=0.3)
            t += 150_000_000
        self.item = self.model.place(t, mass, pos, duration_s=0.1, push_g=0.0, ring_s=0.3).item


def test_calibrate_cli_end_to_end(tmp_path):
    cfg_path = tmp_path / "cart.toml"
    cfg_path.write_text("# this cart's settings\n[scale]\nbaud = 115200  # USB CDC ignores it\n")
    scale = ReactiveScale(tmp_path / "scale")
    cmd = [sys.executable, "-m", "caper_edge", "calibrate", "--config", str(cfg_path), "--port", scale.sim.path,
           "--seconds", "0.5", "--settle-s", "0.8", "--connect-timeout-s", "30"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    out_lines: list[str] = []
    killer = threading.Timer(180, proc.kill)
    killer.start()
    try:
        for line in proc.stdout:
            out_lines.append(line)
            if "press Enter" not in line:
                continue
            answer = "\n"
            if "empty the basket" in line:
                pass                                    # nothing on it yet
            elif "known mass in grams" in line:
                answer = "1000\n"
            elif "in the centre" in line:
                scale.put(1000.0, SPOTS[0])
            else:
                cell = int(line.split("(cell ")[1][0])
                scale.put(1000.0, SPOTS[1 + cell])
            proc.stdin.write(answer)
            proc.stdin.flush()
        rc = proc.wait()
    finally:
        killer.cancel()
        scale.sim.stop()
    err = proc.stderr.read()
    assert rc == 0, "".join(out_lines) + err
    assert "step 7/7" in "".join(out_lines)
    cal = config.load(cfg_path).scale.calibration
    np.testing.assert_allclose(cal.offsets, TRUE_OFFSETS, atol=12.0)     # counts; noise ~15 counts/sample
    np.testing.assert_allclose(cal.gains, TRUE_GAINS, rtol=0.005)
    assert "# this cart's settings" in cfg_path.read_text()


def test_calibrate_cli_without_a_device_fails_cleanly(tmp_path):
    from caper_edge.cli import main

    rc = main(["calibrate", "--config", str(tmp_path / "c.toml"), "--port", str(tmp_path / "nothing"),
               "--mass-g", "1000", "--connect-timeout-s", "0.3"])
    assert rc == 3                                    # InputError: one line, no traceback
    assert not (tmp_path / "c.toml").exists()

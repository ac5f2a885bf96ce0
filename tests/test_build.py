"""The installed package imports and reports how it was built."""

import subprocess
import sys

import caper_edge


def test_build_info_keys():
    info = caper_edge.build_info()
    assert set(info) >= {"compiler", "cxx_standard", "optimized", "cuda_compiled", "simd"}
    assert info["cxx_standard"] >= 17
    assert info["optimized"], "the core must be compiled with optimisation"


def test_cuda_query_never_raises():
    count, reason = caper_edge.cuda_device_count()
    assert count >= 0
    assert (count > 0) == (reason == "")


def test_cli_info_json():
    out = subprocess.run([sys.executable, "-m", "caper_edge", "info", "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert '"cuda_devices"' in out.stdout


def test_cli_unknown_command_fails():
    out = subprocess.run([sys.executable, "-m", "caper_edge", "no-such-command"], capture_output=True, text=True)
    assert out.returncode != 0

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


def test_core_exports_only_its_init_function():
    """_core must not export the C++ runtime or our internals to the process.

    On the GPU machine the compiler (/opt/gcc g++ 13) linked libstdc++ statically and the module
    exported ~4000 std:: symbols; the loader bound some of our calls to numpy's shared libstdc++
    and others to our copy, and the first std::ostringstream (an error message) crashed.
    """
    import shutil
    from pathlib import Path

    import pytest

    from caper_edge import _core

    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("binutils' nm is not installed")
    out = subprocess.run([nm, "-D", "-C", "--defined-only", str(Path(_core.__file__))],
                         capture_output=True, text=True, check=True).stdout
    exported = [line.split(maxsplit=2)[-1] for line in out.splitlines() if line.strip()]
    leaked = [name for name in exported if "::" in name]
    assert "PyInit__core" in exported
    assert not leaked, f"_core exports {len(leaked)} C++ symbols, e.g. {leaked[:3]}"


def test_arrays_with_an_equal_but_not_identical_dtype_are_accepted():
    """An unpickled array (how frames arrive from a source in a child process) carries a dtype
    object equal to numpy's but not identical; the native entry points once refused it with
    "must be a C-contiguous uint8 array, got uint8"."""
    import pickle

    import numpy as np

    from caper_edge import detect, track
    from caper_edge import preprocess as pp

    def thawed(a):
        b = pickle.loads(pickle.dumps(a))
        assert b.dtype == a.dtype and b.dtype is not a.dtype
        return b

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    want, _ = pp.letterbox(img, (32, 32), "rgb8")
    got, _ = pp.letterbox(thawed(img), (32, 32), "rgb8", out=thawed(np.zeros((3, 32, 32), np.float32)))
    np.testing.assert_array_equal(got, want)
    depth = rng.integers(1, 4000, (48, 64), dtype=np.uint16)
    boxes = np.array([[0, 0, 10, 10], [5, 5, 40, 30]], np.float32)
    np.testing.assert_array_equal(pp.median_depth(thawed(depth), thawed(boxes)), pp.median_depth(depth, boxes))
    raw = np.zeros((1, 6, 20), np.float32)
    raw[0, 2:4] = 10.0
    raw[0, 4, 3] = 0.9
    assert len(detect.decode(thawed(raw), 0.25, 0.45, 10)) == len(detect.decode(raw, 0.25, 0.45, 10)) == 1
    cost = rng.random((4, 5))
    np.testing.assert_array_equal(track.linear_assignment(thawed(cost))[0], track.linear_assignment(cost)[0])

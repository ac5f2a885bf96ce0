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

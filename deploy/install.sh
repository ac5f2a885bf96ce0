#!/usr/bin/env bash
# Install (or upgrade) caper-edge as a systemd service on a cart computer. Idempotent: running it
# again upgrades the package and the unit/rules, and never touches an existing config or keys.
#
#   sudo deploy/install.sh [--prefix /opt/caper-edge] [--package PATH_OR_WHEEL]
#                          [--scale-vid VID --scale-pid PID --scale-serial SERIAL]
#                          [--no-enable] [--no-start] [--dry-run]
#
# Steps: system user `caper` -> venv in PREFIX with the package -> /etc/caper-edge/caper-edge.toml
# (first time only) -> unit and udev rules -> daemon-reload, udev reload -> enable (and start).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prefix=/opt/caper-edge
package=$(dirname "$here")
scale_vid="" scale_pid="" scale_serial=""
enable=1 start=1 dry_run=0
unit_dir=/etc/systemd/system
rules_dir=/etc/udev/rules.d
conf_dir=/etc/caper-edge

usage() { sed -n '2,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --package) package=$2; shift 2 ;;
    --scale-vid) scale_vid=$2; shift 2 ;;
    --scale-pid) scale_pid=$2; shift 2 ;;
    --scale-serial) scale_serial=$2; shift 2 ;;
    --no-enable) enable=0; start=0; shift ;;
    --no-start) start=0; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

# Every change goes through `run`, so --dry-run shows exactly what would be done.
run() {
  if [ "$dry_run" = 1 ]; then
    printf '+'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}

hex4() { [[ $1 =~ ^[0-9a-fA-F]{4}$ ]]; }

if [ "$dry_run" = 0 ] && [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root (sudo), or with --dry-run to see the steps" >&2
  exit 1
fi
if [ -n "$scale_vid$scale_pid$scale_serial" ]; then
  if ! hex4 "$scale_vid" || ! hex4 "$scale_pid" || [ -z "$scale_serial" ]; then
    echo "install.sh: --scale-vid and --scale-pid need 4 hex digits and --scale-serial a value (got '$scale_vid' '$scale_pid' '$scale_serial')" >&2
    exit 2
  fi
fi

# 1. The service user: no login, no home of its own (state lives in /var/lib/caper-edge).
if ! getent passwd caper >/dev/null; then
  run useradd --system --user-group --home-dir /var/lib/caper-edge --no-create-home \
      --shell /usr/sbin/nologin --comment "caper-edge service" caper
fi
for group in video dialout; do
  if getent group "$group" >/dev/null && ! id -nG caper 2>/dev/null | tr ' ' '\n' | grep -qx "$group"; then
    run usermod -a -G "$group" caper
  fi
done

# 2. The package in its own venv. --system-site-packages: on a Jetson, TensorRT and the CUDA
# Python bindings come from JetPack's system Python, not from PyPI.
if [ ! -x "$prefix/venv/bin/python" ]; then
  run install -d -m 0755 "$prefix"
  run python3 -m venv --system-site-packages "$prefix/venv"
fi
run "$prefix/venv/bin/python" -m pip install --quiet --upgrade "$package"
if [ -d "$here/../docs" ]; then
  run install -d -m 0755 "$prefix/share/docs"
  run cp -r "$here/../docs/." "$prefix/share/docs/"
fi

# 3. Configuration: installed once, then it is the operator's.
run install -d -m 0755 "$conf_dir"
if [ ! -e "$conf_dir/caper-edge.toml" ]; then
  run install -m 0644 "$here/caper-edge.toml" "$conf_dir/caper-edge.toml"
fi

# 4. Unit (ExecStart follows --prefix) and udev rules (placeholders filled when given).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s#/opt/caper-edge#$prefix#g" "$here/caper-edge.service" >"$tmp/caper-edge.service"
cp "$here/99-caper-edge.rules" "$tmp/99-caper-edge.rules"
if [ -n "$scale_vid" ]; then
  sed -i -e "s/@SCALE_VID@/${scale_vid,,}/" -e "s/@SCALE_PID@/${scale_pid,,}/" \
      -e "s/@SCALE_SERIAL@/$scale_serial/" "$tmp/99-caper-edge.rules"
elif [ -e "$rules_dir/99-caper-edge.rules" ] && ! grep -q '@SCALE_VID@' "$rules_dir/99-caper-edge.rules"; then
  # Upgrading without --scale-*: keep the scale identity filled in at the first install.
  cp "$rules_dir/99-caper-edge.rules" "$tmp/99-caper-edge.rules"
else
  echo "install.sh: no --scale-vid/--scale-pid/--scale-serial: /dev/caper-scale will not exist until they are given" >&2
fi
run install -m 0644 "$tmp/caper-edge.service" "$unit_dir/caper-edge.service"
run install -m 0644 "$tmp/99-caper-edge.rules" "$rules_dir/99-caper-edge.rules"

# 5. Reload and enable.
if command -v udevadm >/dev/null; then
  run udevadm control --reload-rules
  run udevadm trigger --subsystem-match=usb --subsystem-match=tty --subsystem-match=video4linux
fi
run systemctl daemon-reload
if [ "$enable" = 1 ]; then
  run systemctl enable caper-edge.service
fi
if [ "$start" = 1 ]; then
  run systemctl restart caper-edge.service
fi
echo "caper-edge installed in $prefix; config $conf_dir/caper-edge.toml; logs: journalctl -u caper-edge -f"

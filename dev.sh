#!/usr/bin/env bash
# One entry point for people and CI:
#   ./dev.sh launch [ARGS]   install what is needed, then start pplex-desktop
#   ./dev.sh test [PYTEST ARGS]  install what is needed, then lint, type-check and run every test
#                                (with no ARGS: with the coverage report and its floor)
# Works on a fresh Debian/Ubuntu machine as root or as a user with sudo.
set -euo pipefail
cd "$(dirname "$0")"

VENV=${PPLEX_VENV:-.venv}
LAUNCH_PKGS=(libportaudio2 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0
  libxcb-cursor0 libxcb-shape0 libxcb-xinerama0 libxkbcommon-x11-0 libegl1 libgl1
  libfontconfig1 libdbus-1-3 fonts-dejavu-core)
TEST_PKGS=(pulseaudio pulseaudio-utils libasound2-plugins espeak-ng sox xvfb xdotool
  imagemagick chromium libnss3-tools xclip zbar-tools python3-xlib
  systemd)  # systemd: systemd-analyze verifies the service unit

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv python3-dev)
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    say "Please install these system packages yourself: ${missing[*]}"
    return 0
  fi
  say "Installing system packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

python_env() {
  local stamp="$VENV/.pplex-installed"
  local want
  want=$(cat pyproject.toml setup.py | sha256sum | cut -d' ' -f1)
  if [ ! -x "$VENV/bin/python" ]; then
    say "Creating the virtual environment in $VENV"
    python3 -m venv "$VENV"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "Installing pplex-desktop and its Python dependencies"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[test]"
    echo "$want" > "$stamp"
  fi
}

cmd=${1:-}
shift || true
case "$cmd" in
  launch)
    apt_install "${LAUNCH_PKGS[@]}"
    python_env
    exec "$VENV/bin/pplex-desktop" "$@"
    ;;
  test)
    apt_install "${LAUNCH_PKGS[@]}" "${TEST_PKGS[@]}"
    python_env
    say "ruff"
    "$VENV/bin/ruff" check pplex_desktop tests bench
    "$VENV/bin/ruff" format --check -q pplex_desktop tests bench
    say "mypy --strict"
    "$VENV/bin/mypy"
    say "pytest"
    if [ $# -eq 0 ]; then
      # The whole suite: with the coverage report and its floor (pyproject's fail_under).
      exec "$VENV/bin/python" -m pytest --cov
    fi
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    echo "usage: ./dev.sh launch [pplex-desktop options] | ./dev.sh test [pytest options]" >&2
    exit 2
    ;;
esac

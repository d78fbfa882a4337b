#!/usr/bin/env bash
# Install Editable Workbench into ./.venv (shared by scripts/lab.sh and scripts/test.sh).
#
#   bash scripts/install.sh          # data + venv + pip install -e ".[test]"
#   bash scripts/install.sh --test   # the same, plus Debian chromium + fonts for the browser test
#
# Idempotent and fast on a second run: apt is skipped when the data (and browser) are
# present, pip is skipped while .venv/.workbench-stamp matches the hash of pyproject.toml.
# Environment: WORKBENCH_PYTHON (interpreter to build the venv from), WORKBENCH_VENV
# (default .venv), WORKBENCH_FORCE_PIP=1 (reinstall even if the stamp matches).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Pinned here and in pyproject.toml / environment.yml (tests/repo/test_packaging.py checks they agree).
TORCH_PIN="torch==2.14.1"
TORCHVISION_PIN="torchvision==0.29.1"
VENV="${WORKBENCH_VENV:-.venv}"
STAMP="$VENV/.workbench-stamp"
DEBIAN_FASHION_DIR="/usr/share/datasets/fashion-mnist"

WANT_BROWSER=0
for arg in "$@"; do
    case "$arg" in
        --test) WANT_BROWSER=1 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $arg (use --test)" >&2; exit 2 ;;
    esac
done

T0=$SECONDS
say() { printf '[workbench %3ds] %s\n' "$((SECONDS - T0))" "$*"; }
warn() { printf '[workbench] WARNING: %s\n' "$*" >&2; }
die() { printf '[workbench] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- apt (only what is missing)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
fi
APT_UPDATED=0
apt_install() {
    # apt_install PKG... : install Debian packages, running apt-get update once, only when needed.
    if ! command -v apt-get >/dev/null 2>&1; then
        warn "apt-get not found; please install: $*"
        return 1
    fi
    if [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; then
        warn "not root and no sudo; please install as root: apt-get install $*"
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if [ "$APT_UPDATED" -eq 0 ]; then
        say "apt-get update"
        $SUDO apt-get update -qq || warn "apt-get update failed; trying the install anyway"
        APT_UPDATED=1
    fi
    say "apt-get install $*"
    $SUDO apt-get install -y -qq --no-install-recommends "$@"
}

fashion_present() {
    local d
    for d in "$DEBIAN_FASHION_DIR" "${WORKBENCH_DATA:-$HOME/.cache/editable-workbench}/FashionMNIST/raw"; do
        if ls "$d"/train-images-idx3-ubyte* >/dev/null 2>&1 && ls "$d"/t10k-labels-idx1-ubyte* >/dev/null 2>&1; then
            return 0
        fi
    done
    return 1
}

if fashion_present; then
    say "Fashion-MNIST found (skipping apt)"
else
    say "Fashion-MNIST missing: installing Debian package dataset-fashion-mnist"
    if ! apt_install dataset-fashion-mnist || ! fashion_present; then
        msg="could not install dataset-fashion-mnist; the notebook/CLI can fetch it with torchvision instead (--download / download=True)"
        if [ "$WANT_BROWSER" -eq 1 ]; then die "$msg, but the test suite needs it offline"; fi
        warn "$msg"
    fi
fi

if [ "$WANT_BROWSER" -eq 1 ]; then
    missing=()
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    [ -d /usr/share/fonts/truetype/dejavu ] || missing+=(fonts-dejavu-core)
    if [ "${#missing[@]}" -eq 0 ]; then
        say "chromium and fonts-dejavu-core present (skipping apt)"
    else
        apt_install "${missing[@]}" || warn "could not install ${missing[*]}: the browser (ui) tests will be skipped"
    fi
fi

# ---------------------------------------------------------------- python + venv
PY="${WORKBENCH_PYTHON:-}"
if [ -z "$PY" ]; then
    if command -v python3.11 >/dev/null 2>&1 && python3.11 -c "" >/dev/null 2>&1; then PY=python3.11
    elif command -v python3 >/dev/null 2>&1; then PY=python3
    else die "no python3 found; install Python 3.11 (Debian: apt-get install python3 python3-venv)"
    fi
fi
PYVER="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "$PY is Python $PYVER; Editable Workbench needs Python >= 3.10 (3.11 recommended)"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "" >/dev/null 2>&1; then
    say "using existing virtual environment $VENV ($("$VENV/bin/python" --version 2>&1))"
else
    say "creating virtual environment $VENV with $PY (Python $PYVER)"
    rm -rf "$VENV"
    if ! "$PY" -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        say "venv module unavailable: installing python$PYVER-venv"
        apt_install "python$PYVER-venv" || die "cannot create a venv; install python$PYVER-venv (Debian) and retry"
        "$PY" -m venv "$VENV"
    fi
fi

# ---------------------------------------------------------------- pip (skipped when the stamp matches)
HASH="$( (cat pyproject.toml; echo "$TORCH_PIN $TORCHVISION_PIN"; "$VENV/bin/python" --version) 2>&1 \
        | sha256sum | cut -d' ' -f1)"
if [ "${WORKBENCH_FORCE_PIP:-0}" != "1" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ]; then
    say "Python packages up to date (stamp matches pyproject.toml; skipping pip)"
else
    say "pip install -e \".[test]\" $TORCH_PIN $TORCHVISION_PIN  (first time: a few minutes, ~6 GB)"
    "$VENV/bin/python" -m pip install --progress-bar off -e ".[test]" "$TORCH_PIN" "$TORCHVISION_PIN"
    echo "$HASH" > "$STAMP"
    say "Python packages installed"
fi

"$VENV/bin/python" - <<'EOF'
import torch
cuda = torch.cuda.is_available()
print(f"[workbench] torch {torch.__version__}; compute device: "
      f"{'cuda (' + torch.cuda.get_device_name(0) + ')' if cuda else 'cpu (no CUDA GPU found)'}")
EOF
say "install done"

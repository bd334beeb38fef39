#!/usr/bin/env bash
# Idempotent set-up: system packages, the CPU torch wheel, then the project (editable, dev extra).
set -euo pipefail
PYTHON="${1:-python3}"

# Open3D's wheel needs libusb at import time.
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
        echo "[setup] installing libusb-1.0-0"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 >/dev/null
    else
        echo "[setup] warning: libusb-1.0-0 is missing and we are not root; Open3D may fail to import" >&2
    fi
fi

# Chromium for the viewer's browser test (tests/test_viewer.py skips, saying why, without one).
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null && ! command -v google-chrome >/dev/null; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
        echo "[setup] installing chromium (headless browser for the viewer test)"
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
            echo "[setup] warning: could not install chromium; the viewer's browser test will be skipped" >&2
        fi
    else
        echo "[setup] note: no chromium and not root with apt-get; the viewer's browser test will be skipped" >&2
    fi
fi

# Install torch first and exactly: any looser request pulls the multi-GB CUDA build.
if ! "$PYTHON" -c "import torch" >/dev/null 2>&1; then
    echo "[setup] installing torch==2.13.0 (CPU)"
    "$PYTHON" -m pip install -q torch==2.13.0
fi

# The project itself; skip the (slow) resolver when it is already installed editable.
if ! "$PYTHON" -c "import lyra_sim, pytest, hypothesis, coacd, open3d, pybullet, numba, viser, ray, stable_baselines3, pxr, mujoco" >/dev/null 2>&1; then
    echo "[setup] installing lyra-sim (editable, dev extra)"
    "$PYTHON" -m pip install -q -e ".[dev]"
fi

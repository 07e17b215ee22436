#!/usr/bin/env bash
# Install a software GPU for the wgpu test suites: Mesa's lavapipe (a Vulkan driver that runs on
# the CPU and has shaderFloat16), from Debian/Ubuntu's `mesa-vulkan-drivers`. Idempotent: does
# nothing when the lavapipe driver is already installed.
set -euo pipefail
if ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  else
    echo "error: lavapipe (mesa-vulkan-drivers) is missing and this user cannot install it;" >&2
    echo "       install it, e.g. 'apt-get install mesa-vulkan-drivers', and run again" >&2
    exit 1
  fi
fi
echo "== installing mesa-vulkan-drivers (lavapipe software Vulkan) for the wgpu tests"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq mesa-vulkan-drivers >/dev/null
ls /usr/share/vulkan/icd.d/lvp_icd*.json

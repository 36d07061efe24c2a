#!/usr/bin/env bash
# Headless Chromium (and its WebDriver) from Debian's packages, for the console's browser
# tests. Idempotent: does nothing when chromium is already on PATH. Never downloads a
# browser build of its own (Playwright's `install` does not work on these machines).
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
$SUDO apt-get clean  # the downloaded .deb files (~100 MB): CI disks are small
command -v chromium

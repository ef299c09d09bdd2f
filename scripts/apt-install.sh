#!/bin/sh
# Install Debian/Ubuntu packages when we can (root or password-less sudo); fail quietly otherwise
# so the Makefile can print its own hint.
set -e
command -v apt-get >/dev/null 2>&1 || { echo "apt-get not found: install $* with your package manager" >&2; exit 1; }
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
  echo "need root to install $*" >&2; exit 1; fi
echo "installing system packages: $*"
$SUDO apt-get update -qq >/dev/null 2>&1 || true
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null

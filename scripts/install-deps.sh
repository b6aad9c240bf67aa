#!/bin/sh
# Installs the Debian packages vlm.c builds against, only those that are missing.
set -e
PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev python3 python3-venv xz-utils liblzma-dev
libjansson-dev libpcre2-dev libcurl4-openssl-dev libmicrohttpd-dev libjpeg62-turbo-dev libpng-dev
libwebp-dev libgif-dev libssl-dev libicu-dev"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null

#!/bin/sh
# Installs what vlm.c builds against, only what is missing. `install-deps.sh` covers the build
# (`make serve`, `make install`); `install-deps.sh --test` adds what only `make test` needs
# (clang + the libFuzzer runtime, python3-venv, Slurm + munge + HAProxy for the job-script
# tests, and the aarch64 cross compiler + qemu-user for the generic kernel table's check). Libraries that pkg-config already finds (a
# cluster's modules, a source build) are not installed again. On a machine without apt-get it
# prints the package names for dnf (RHEL, Rocky, Fedora) or the library names, and stops.
set -e
test_deps=0
[ "${1:-}" = "--test" ] && test_deps=1

# pkg-config module : Debian package : RHEL/Rocky package
LIBS="jansson:libjansson-dev:jansson-devel
libpcre2-8:libpcre2-dev:pcre2-devel
libcurl:libcurl4-openssl-dev:libcurl-devel
libmicrohttpd:libmicrohttpd-dev:libmicrohttpd-devel
libjpeg:libjpeg62-turbo-dev:libjpeg-turbo-devel
libpng:libpng-dev:libpng-devel
libwebp:libwebp-dev:libwebp-devel
libwebpdemux:libwebp-dev:libwebp-devel
libcrypto:libssl-dev:openssl-devel
icu-uc:libicu-dev:libicu-devel
liblzma:liblzma-dev:xz-devel"
# giflib has no pkg-config module: found by its header.
TOOLS_DEB="build-essential cmake pkg-config xz-utils"
TOOLS_RPM="gcc make cmake pkgconf-pkg-config xz giflib-devel"
TEST_DEB="clang libclang-rt-14-dev python3 python3-venv munge slurmctld slurmd slurm-client haproxy
gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
TEST_RPM="clang compiler-rt python3 munge slurm slurm-slurmctld slurm-slurmd haproxy"

have_pc() { command -v pkg-config >/dev/null 2>&1 && pkg-config --exists "$1"; }
have_gif() { for d in /usr/include /usr/local/include; do [ -f "$d/gif_lib.h" ] && return 0; done; return 1; }

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
  missing=""
  for row in $LIBS; do
    pc=${row%%:*}; rpm=${row##*:}
    have_pc "$pc" || missing="$missing $rpm"
  done
  have_gif || missing="$missing giflib-devel"
  for t in cc cmake pkg-config; do command -v $t >/dev/null 2>&1 || missing="$missing $t"; done
  [ -z "$missing" ] && exit 0
  echo "vlm.c needs these libraries and tools, which this script installs only with apt-get:" >&2
  echo "  RHEL/Rocky/Fedora: dnf install$missing" >&2
  [ $test_deps = 1 ] && echo "  for make test also: dnf install $TEST_RPM" >&2
  echo "  elsewhere: the development packages of jansson, pcre2, libcurl, libmicrohttpd, libjpeg-turbo," >&2
  echo "  libpng, libwebp, giflib, OpenSSL (libcrypto), ICU, xz (liblzma); gcc or clang, cmake, pkg-config" >&2
  exit 1
fi

is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=""
for p in $TOOLS_DEB; do is_installed "$p" || missing="$missing $p"; done
for row in $LIBS; do
  pc=${row%%:*}; rest=${row#*:}; deb=${rest%%:*}
  have_pc "$pc" || is_installed "$deb" || missing="$missing $deb"
done
have_gif || is_installed libgif-dev || missing="$missing libgif-dev"
if [ $test_deps = 1 ]; then
  for p in $TEST_DEB; do is_installed "$p" || missing="$missing $p"; done
fi
[ -z "$missing" ] && exit 0
missing=$(echo $missing | tr ' ' '\n' | sort -u | tr '\n' ' ')
echo "installing: $missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null

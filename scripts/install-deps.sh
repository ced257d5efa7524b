#!/usr/bin/env bash
# Installs every Debian package that dlsys needs to build, test and benchmark.
# Idempotent; works as root or through sudo. Nothing else is downloaded.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config ninja-build git
  libtorch-dev python3-torch
  libcli11-dev libyaml-cpp-dev libarchive-dev libssl-dev openssl libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev nlohmann-json3-dev libexpected-dev libsimdjson-dev
  libboost-dev libzstd-dev zstd libcurl4-openssl-dev
  python3-jsonschema python3-yaml lnav
  zlib1g-dev libarchive-tools clang-14 libfuzzer-14-dev libclang-rt-14-dev
  tar gzip curl bc hyperfine wrk time libopenblas0-openmp prometheus nginx-light
  python3-flask iproute2 jq chromium openssh-server openssh-client
  docker-registry skopeo apache2-utils python3-cryptography
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

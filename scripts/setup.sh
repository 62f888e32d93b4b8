#!/usr/bin/env bash
# Installs every build/test dependency of lmpress from Debian 12 packages. Idempotent.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libopenblas-dev liblapacke-dev nlohmann-json3-dev
      googletest libgtest-dev libbenchmark-dev libomp-dev libsentencepiece-dev libpcre2-dev libfmt-dev python3
      libbz2-dev zlib1g-dev jq ccache)  # jq: bench/vs-llamacpp-*.sh; ccache: faster rebuilds
# Optional: the data-parallel (Open MPI) flavour, cmake -DLMP_MPI=ON. Not needed by the default build.
[ "${LMP_WITH_MPI:-0}" = 1 ] && pkgs+=(libopenmpi-dev openmpi-bin)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
echo "setup: dependencies present"

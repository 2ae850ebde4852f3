#!/usr/bin/env bash
# Installs the Debian packages pagedkv needs to build and test, and only those that are missing.
# Idempotent: when everything is present it prints one line and changes nothing.
# Usage: scripts/install_deps.sh            (runs apt-get as root, or through sudo when available)
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libcli11-dev  # the `pagedkv` command line (tools/internal/flags.cc)
  libboost-dev libspdlog-dev libabsl-dev nlohmann-json3-dev libxxhash-dev libhiredis-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev
  python3-dev pybind11-dev python3-pytest python3-numpy
  # the service (pagedkv serve): gRPC and protobuf, C++ and Python, code generators included
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  python3-grpcio python3-protobuf
  # the service's Prometheus /metrics (cpp-httplib) and KV events for routers (ZeroMQ); the tests'
  # Python event subscriber (pyzmq, msgpack) and a real Prometheus with promtool (skipped when absent)
  libcpp-httplib-dev libzmq3-dev libmsgpack-cxx-dev python3-zmq python3-msgpack prometheus
  python3-torch  # the reference engine (python/pagedkv/engine) and its tests, CPU
  chromium  # headless browser test of report.html (tests/browser; skipped when absent)
  redis-server redis-tools  # the remote tier's tests run real servers (tests/remote; skipped when absent)
)
# Extra packages can be passed as arguments.
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo_cmd=()
elif command -v sudo >/dev/null 2>&1; then
  sudo_cmd=(sudo)
else
  echo "install_deps: missing packages: ${missing[*]}" >&2
  echo "install_deps: not root and no sudo; install them with apt-get as root and re-run" >&2
  exit 1
fi

echo "install_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"

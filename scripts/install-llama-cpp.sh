#!/usr/bin/env bash
# Builds llama-cpp-python from source for this CPU, without AMX, and installs it into a venv.
#
# Why: llama.cpp's default build uses -march=native, which turns on ggml's AMX kernels on
# Intel Xeons that have AMX (Sapphire Rapids and newer); those kernels segfault on the first
# decode on many such machines, virtualised ones in particular (llama.cpp #20824). We keep
# -march=native, so AVX2/AVX-512 are used exactly where this CPU has them, and subtract AMX
# alone. bench/results/llama_build.json (bench/llama_build_bench.py) compares this with the
# explicit-flags and the AVX2-only builds.
#
# Why a wheelhouse of our own: pip's wheel cache is keyed by the sdist, not by CMAKE_ARGS or
# the CPU, so it would hand an AMX (or AVX-512) wheel built elsewhere to this machine. Our
# wheels are kept under a key made of the version, the flags, the CPU's feature flags and the
# compiler, and pip's own cache is bypassed for this one build.
#
# Usage: scripts/install-llama-cpp.sh VENV_PYTHON VERSION
set -euo pipefail
python=$1
version=$2

cmake_args="-DGGML_NATIVE=ON"
case "$(uname -m)" in
  x86_64|amd64)
    no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    cmake_args="$cmake_args -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    cmake_args="$cmake_args -DCMAKE_C_FLAGS='$no_amx' -DCMAKE_CXX_FLAGS='$no_amx'"
    ;;
esac

cpu_flags=$(grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null | tr ' ' '\n' | sort | tr '\n' ' ' || true)
compiler=$(${CC:-cc} --version 2>/dev/null | head -n 1 || true)
key=$(printf '%s\n' "$version" "$cmake_args" "$(uname -m)" "$cpu_flags" "$compiler" | sha256sum | cut -c1-16)
wheelhouse="${XDG_CACHE_HOME:-$HOME/.cache}/rag/llama-wheels/$key"

if ! ls "$wheelhouse"/llama_cpp_python-"$version"-*.whl >/dev/null 2>&1; then
  echo "Building llama-cpp-python $version for this CPU without AMX (~8 min on 2 cores, once)…"
  mkdir -p "$wheelhouse.tmp"
  CMAKE_ARGS="$cmake_args" "$python" -m pip wheel --quiet --no-deps --no-cache-dir \
    --no-binary llama-cpp-python --wheel-dir "$wheelhouse.tmp" "llama-cpp-python==$version"
  rm -rf "$wheelhouse" && mv "$wheelhouse.tmp" "$wheelhouse"
fi
"$python" -m pip install --quiet --force-reinstall --no-deps --no-index --find-links "$wheelhouse" \
  "llama-cpp-python==$version"

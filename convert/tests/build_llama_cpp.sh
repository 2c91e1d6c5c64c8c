#!/usr/bin/env bash
# Builds llama.cpp (libllama, libggml, libggml-base, libggml-cpu: shared libraries only) from the
# vendored tree of the llama-cpp-python 0.3.36 sdist on PyPI, for larder-convert's llama.cpp
# oracle tests (tests/it/logits.rs, tests/it/e2e.rs): llama.cpp loads, runs and tokenizes the
# converted files, and `llama_model_quantize` must reproduce every preset byte for byte.
#
# usage: build_llama_cpp.sh [OUT_DIR]   (default: .llama-cpp/ at the checkout root, where the
#                                        tests look)
# OUT_DIR/lib/       the shared libraries (point LLAMA_CPP_LIB_PATH here)
# OUT_DIR/python/    the sdist's pure-Python `llama_cpp` package, unbuilt (put it on PYTHONPATH
#                    of an interpreter with numpy; its other requirements are added here when
#                    that interpreter lacks them)
# OUT_DIR/llama.cpp/models/  three of llama.cpp's real vocabularies (tests/it/pretok.rs)
#
# Needs gcc, g++, tar and a Python with pip (`.venv/bin/python`, or $PYTHON); CMake and Ninja
# come from PyPI into that Python's environment (the system's may be too old). Idempotent: does
# nothing when OUT_DIR already holds a build of this version. LLAMA_CPP_OPT overrides the
# optimisation flags (default -O1, see below).
#
# Everything optional is off: no common library, tools, examples, server, tests, OpenSSL or
# OpenMP, no llamafile sgemm or repacking. GGML_NATIVE=OFF, with the CPU backend's x86
# instruction sets (SSE4.2, AVX, AVX2, BMI2, FMA, F16C) each on only when this CPU has it, so
# the build runs where it was built and nothing depends on -march=native; ggml-base, where the
# quantizers live, gets no -m flags at all, so its rounding is the one of build_ggml.sh's.
#
# Optimisation: the test models are tiny, so compile time dominates. Measured on 2 cores:
# see docs/convert.md. ggml-base is always built at -O2: `llama_model_quantize` spends its time
# there (the e2e test quantizes some 270 files). On x86-64 without -mfma, GCC does not contract or
# reorder float arithmetic at any -O level, so the bytes do not depend on it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$ROOT/.llama-cpp}
PY=${PYTHON:-$ROOT/.venv/bin/python}
OPT=${LLAMA_CPP_OPT:--O1}
. "$ROOT/convert/tests/sdist.sh"

if built lib/libllama.so; then
  exit 0
fi
start=$(date +%s)
start_build build_llama_cpp.sh
rm -rf "$OUT/lib" "$OUT/python" "$OUT/llama.cpp"

# CMake and Ninja from PyPI, into $PY's environment (pip does nothing when they are there). Their
# path is absolute: CMake runs Ninja from inside the build tree, so a relative $PY (as .ci/setup
# passes) would not find it there.
"$PY" -m pip install --quiet --disable-pip-version-check 'cmake>=3.19' ninja
bindir=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
CMAKE=$bindir/cmake NINJA=$bindir/ninja
for tool in "$CMAKE" "$NINJA"; do
  [ -x "$tool" ] || { echo "build_llama_cpp.sh: pip installed no $tool" >&2; exit 1; }
done

# The CPU backend's instruction sets: those of this CPU (x86-64; elsewhere ggml's defaults).
isa=()
if grep -q '^flags' /proc/cpuinfo 2>/dev/null && [ "$(uname -m)" = x86_64 ]; then
  cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
  for pair in SSE42:sse4_2 AVX:avx AVX2:avx2 BMI2:bmi2 FMA:fma F16C:f16c; do
    case $cpu_flags in
      *" ${pair#*:} "*) isa+=("-DGGML_${pair%%:*}=ON") ;;
      *) isa+=("-DGGML_${pair%%:*}=OFF") ;;
    esac
  done
  isa+=(-DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF)
fi

# The same sdist as build_ggml.sh.
fetch_sdist

top=llama_cpp_python-$VERSION
vendor=$top/vendor/llama.cpp
tar -xzf "$sdist" -C "$work" "$top/llama_cpp" "$vendor/CMakeLists.txt" "$vendor/cmake" \
  "$vendor/include" "$vendor/src" "$vendor/ggml" "$vendor/vendor" \
  "$vendor/models/ggml-vocab-llama-bpe.gguf" "$vendor/models/ggml-vocab-qwen2.gguf" \
  "$vendor/models/ggml-vocab-gpt-2.gguf"

# ggml-base holds the quantizers llama_model_quantize runs, so it alone gets -O2: a hook run
# after the first project() call queues the option for when the whole tree is configured.
cat >"$work/opt.cmake" <<'CMAKE'
if(NOT LARDER_OPT_HOOK)
  set(LARDER_OPT_HOOK ON)
  cmake_language(DEFER CALL target_compile_options ggml-base PRIVATE -O2)
endif()
CMAKE
"$CMAKE" -S "$work/$vendor" -B "$work/build" -G Ninja -DCMAKE_MAKE_PROGRAM="$NINJA" \
  -DCMAKE_PROJECT_INCLUDE="$work/opt.cmake" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_FLAGS_RELEASE="$OPT -DNDEBUG" -DCMAKE_CXX_FLAGS_RELEASE="$OPT -DNDEBUG" \
  -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=OFF "${isa[@]}" -DGGML_OPENMP=OFF -DGGML_LLAMAFILE=OFF \
  -DGGML_CPU_REPACK=OFF -DGGML_BACKEND_DL=OFF \
  -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_BUILD_MTMD=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DLLAMA_ALL_WARNINGS=OFF \
  -DCMAKE_BUILD_RPATH_USE_ORIGIN=ON -DCMAKE_INSTALL_RPATH='$ORIGIN' \
  -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON >"$work/cmake.log" \
  || { cat "$work/cmake.log" >&2; exit 1; }
"$NINJA" -C "$work/build" -j "$(nproc)" llama >"$work/build.log" \
  || { tail -n 100 "$work/build.log" >&2; exit 1; }

# Each library with its versioned names (libllama.so needs libggml.so.0, not libggml.so).
mkdir -p "$work/lib"
find "$work/build" -name 'lib*.so*' \( -type f -o -type l \) -exec cp -a {} "$work/lib/" \;
mv "$work/lib" "$OUT/lib"
mkdir -p "$OUT/python" "$OUT/llama.cpp"
mv "$work/$top/llama_cpp" "$OUT/python/llama_cpp"
mv "$work/$vendor/models" "$OUT/llama.cpp/models"

# llama_cpp's own requirements besides numpy, when the interpreter does not have them.
if ! "$PY" -c 'import typing_extensions, diskcache, jinja2' 2>/dev/null; then
  "$PY" -m pip install --quiet --disable-pip-version-check --target "$OUT/python" \
    typing-extensions diskcache jinja2
fi
LLAMA_CPP_LIB_PATH=$OUT/lib PYTHONPATH=$OUT/python "$PY" -c \
  'import llama_cpp; llama_cpp.llama_backend_init(); print("llama.cpp", llama_cpp.llama_print_system_info().decode())' \
  >"$work/check.log" || { cat "$work/check.log" >&2; exit 1; }
touch "$STAMP"
echo "built $OUT/lib (llama.cpp of llama-cpp-python $VERSION, $OPT) in $(($(date +%s) - start)) s"

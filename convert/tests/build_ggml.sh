#!/usr/bin/env bash
# Builds ggml's base library (libggml-base.so: ggml.c, ggml-quants.c and the rest of the
# `ggml-base` CMake target, no CPU backend) from the llama-cpp-python 0.3.36 sdist on PyPI, for
# the byte-level oracle of larder-convert's tests (tests/it/quants.rs, tests/py/check_gguf.py):
# ggml's own `quantize_row_*_ref` and `ggml_quantize_chunk`.
#
# usage: build_ggml.sh [OUT_DIR]   (default: .ggml/ at the checkout root, where the tests look)
# Needs gcc, g++ and a Python with pip (`.venv/bin/python`, or $PYTHON). Idempotent: does nothing
# when OUT_DIR already holds a library built from this version. About 30 s on 2 cores.
#
# No CMake: the sources are compiled as the `ggml-base` target compiles them in a Release build
# (-O3 -DNDEBUG, C11/C++17 with GNU extensions, no -march flags, so no FMA contraction), which is
# what makes the quantizers' float rounding the same as llama-cpp-python's libggml-base.so.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$ROOT/.ggml}
PY=${PYTHON:-$ROOT/.venv/bin/python}
. "$ROOT/convert/tests/sdist.sh"

if built libggml-base.so; then
  exit 0
fi
start_build build_ggml.sh
fetch_sdist

top=llama_cpp_python-$VERSION/vendor/llama.cpp/ggml
tar -xzf "$sdist" -C "$work" --wildcards "$top/include/*" "$top/src/*.c" "$top/src/*.cpp" \
  "$top/src/*.h" "$top/src/ggml-version.h.in"
src=$work/$top/src
sed -e "s/@GGML_VERSION@/llama-cpp-python-$VERSION/" -e 's/@GGML_BUILD_COMMIT@/unknown/' \
  "$src/ggml-version.h.in" >"$src/ggml-version.h"

flags=(-O3 -DNDEBUG -fPIC -I"$work/$top/include" -I"$src" -D_GNU_SOURCE -D_XOPEN_SOURCE=600
  -DGGML_SCHED_MAX_COPIES=4 -DGGML_BUILD -DGGML_SHARED)
# The sources of CMake's ggml-base target (ggml/src/CMakeLists.txt), two compilers at a time.
units=(ggml.c ggml-alloc.c ggml-quants.c ggml.cpp ggml-backend.cpp ggml-backend-meta.cpp
  ggml-opt.cpp ggml-threading.cpp gguf.cpp)
for u in "${units[@]}"; do
  case $u in
    *.c) echo "gcc -std=gnu11 ${flags[*]} -c $src/$u -o $work/$u.o" ;;
    *) echo "g++ -std=gnu++17 ${flags[*]} -c $src/$u -o $work/$u.o" ;;
  esac
done | xargs -P "$(nproc)" -I{} sh -c '{}'
objs=()
for u in "${units[@]}"; do objs+=("$work/$u.o"); done
g++ -shared -Wl,--no-undefined -Wl,-soname,libggml-base.so -o "$work/libggml-base.so" \
  "${objs[@]}" -lm -lpthread
mv "$work/libggml-base.so" "$OUT/libggml-base.so"
touch "$STAMP"
echo "built $OUT/libggml-base.so (ggml of llama-cpp-python $VERSION)"

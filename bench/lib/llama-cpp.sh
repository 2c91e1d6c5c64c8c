# Sourced by bench/convert: llama.cpp's own quantizer as a reference, through llama-cpp-python
# (PyPI), which compiles llama.cpp from source when installed. The build takes about 15 minutes
# on 2 cores, so it happens once, into a cache venv, and only when asked for.
#
#   llama_cpp_prepare        sets LLAMA_PY to the venv's python, or to "" (comparison skipped)
#   "$LLAMA_PY" bench/lib/llama-quantize.py SRC DST TYPE    then quantizes with llama.cpp
#
# Needs CACHE (the cache folder) set by the caller.
LLAMA_VENV=${LLAMA_VENV:-$CACHE/llama-cpp-venv}
LLAMA_CPP_PYTHON_VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}

llama_cpp_ready() {
  [ -x "$LLAMA_VENV/bin/python" ] && "$LLAMA_VENV/bin/python" -c 'import llama_cpp' 2> /dev/null
}

llama_cpp_prepare() {
  LLAMA_PY=""
  if llama_cpp_ready; then
    LLAMA_PY=$LLAMA_VENV/bin/python
    return 0
  fi
  if [ "${BENCH_LLAMA_CPP:-0}" != 1 ]; then
    if [ -d "$LLAMA_VENV" ]; then
      echo "llama.cpp comparison skipped: $LLAMA_VENV has no working llama_cpp (re-run with BENCH_LLAMA_CPP=1 to rebuild)"
    else
      echo "llama.cpp comparison skipped (BENCH_LLAMA_CPP=1 builds llama-cpp-python into $LLAMA_VENV once, ~15 min)"
    fi
    return 0
  fi
  local log=$CACHE/llama-cpp-build.log
  echo "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION into $LLAMA_VENV (CPU only; log: $log)..."
  rm -rf "$LLAMA_VENV"
  if python3 -m venv "$LLAMA_VENV" > "$log" 2>&1 &&
    CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_CUDA=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF" \
      "$LLAMA_VENV/bin/pip" install -v --no-cache-dir --disable-pip-version-check \
      "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" >> "$log" 2>&1 &&
    llama_cpp_ready; then
    LLAMA_PY=$LLAMA_VENV/bin/python
  else
    echo "llama-cpp-python build failed; llama.cpp comparison skipped. Log tail:"
    tail -n 20 "$log"
  fi
}

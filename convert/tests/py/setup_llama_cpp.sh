#!/bin/sh
# Builds llama-cpp-python from its sdist (about 10 minutes on 2 cores) into a
# venv and prints the variables that turn on the optional oracle tests:
#   LARDER_LLAMA_CPP_PYTHON  llama.cpp loads/evaluates/tokenizes our files and
#                            `llama_model_quantize` must reproduce our tensors
#   LARDER_GGML_QUANTS_LIB   this build's libggml-base.so, in place of the one
#                            .ci/setup builds (convert/tests/build_ggml.sh)
# usage: setup_llama_cpp.sh [VENV_DIR]   (default .venv-llama)
set -eu
VENV=${1:-.venv-llama}
python3 -m venv "$VENV"
CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 \
    "$VENV/bin/pip" install llama-cpp-python==0.3.36 gguf==0.19.0 numpy tokenizers sentencepiece
LIB=$(ls "$VENV"/lib/python3*/site-packages/llama_cpp/lib/libggml-base.so* | head -n 1)
echo "export LARDER_LLAMA_CPP_PYTHON=$(realpath "$VENV")/bin/python"
echo "export LARDER_GGML_QUANTS_LIB=$(realpath "$LIB")"

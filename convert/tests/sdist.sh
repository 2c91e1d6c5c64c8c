# Sourced by build_ggml.sh and build_llama_cpp.sh: the one llama-cpp-python sdist both build
# from (so ggml's quantizers and llama.cpp are the same version), and the steps they share.
# Expects ROOT, OUT and PY to be set; sets VERSION and STAMP.
VERSION=0.3.36
SDIST_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
STAMP=$OUT/llama-cpp-python-$VERSION.built

# built FILE: whether OUT holds FILE from a finished build of this version.
built() {
  [ -f "$STAMP" ] && [ -f "$OUT/$1" ]
}

# start_build SCRIPT: checks the tools, makes OUT (ignored by git) without the stamp or the
# work of killed runs, and a work directory $work in it, removed on exit.
start_build() {
  for tool in gcc g++ tar sha256sum; do
    command -v "$tool" >/dev/null || { echo "$1: $tool is missing" >&2; exit 1; }
  done
  mkdir -p "$OUT"
  printf '*\n' >"$OUT/.gitignore" # the directory ignores itself: nothing in it is source
  rm -rf "$STAMP" "$OUT"/build.*
  work=$(mktemp -d "$OUT/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
}

# fetch_sdist: downloads the sdist into $work/dl (pip's cache usually has it) and checks its
# sha256; sets $sdist. Only this package from source: its build backend's own requirements may
# come as wheels (pip prepares the sdist's metadata, and building cmake from source would take
# many minutes).
fetch_sdist() {
  "$PY" -m pip download --quiet --disable-pip-version-check --no-deps \
    --no-binary llama-cpp-python "llama-cpp-python==$VERSION" -d "$work/dl"
  sdist=$(ls "$work"/dl/*.tar.gz)
  echo "$SDIST_SHA256  $sdist" | sha256sum -c --quiet -
}

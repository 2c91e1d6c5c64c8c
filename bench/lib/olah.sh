# Sourced by the serve benchmarks: the olah mirror (PyPI `olah`, a Python Hub mirror) as a
# reference, configured with the Hub stand-in as its upstream.
#
#   olah_install                      # venv in bench/out/olah-venv, once
#   olah_start PORT STANDIN_LOG DIR   # start olah on 127.0.0.1:PORT; pid in OLAH_PID
#
# STANDIN_LOG is the stand-in's output, from which the API and CDN ports are read.
OLAH_VENV=${OLAH_VENV:-$ROOT/bench/out/olah-venv}

olah_install() {
  if [ ! -x "$OLAH_VENV/bin/olah-cli" ]; then
    python3 -m venv "$OLAH_VENV"
    "$OLAH_VENV/bin/pip" install -q --disable-pip-version-check 'olah==0.5.*'
  fi
}

olah_start() { # port, stand-in log, work dir
  local port=$1 log=$2 dir=$3 api cdn
  api=$(sed -n 's|^READY http://||p' "$log")
  cdn=$(sed -n 's|^hub-standin: CDN at http://||p' "$log")
  mkdir -p "$dir"
  (cd "$dir" && exec "$OLAH_VENV/bin/olah-cli" --host 127.0.0.1 --port "$port" \
    --hf-scheme http --hf-netloc "$api" --hf-lfs-netloc "$cdn" \
    --mirror-scheme http --mirror-netloc "127.0.0.1:$port" --mirror-lfs-netloc "127.0.0.1:$port" \
    --repos-path "$dir/repos" > "$dir/olah.log" 2>&1) &
  OLAH_PID=$!
  for _ in $(seq 1 200); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
    sleep 0.1
  done
  echo "olah did not start:"; cat "$dir/olah.log"; return 1
}

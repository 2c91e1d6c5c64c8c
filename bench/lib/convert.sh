# Sourced by bench/convert and bench/convert-moe: measuring commands, serving a checkpoint from
# the Hub stand-in and pulling it into a larder home, and comparing two GGUF files' tensors.
#
# Needs OUT (the working directory), LARDER and STANDIN (binaries) set by the caller.

measure() { # command... -> "seconds rss_mib"; its stdout in $OUT/stdout.txt
  if ! /usr/bin/time -f "%e %M" -o "$OUT/time.txt" "$@" > "$OUT/stdout.txt" 2> "$OUT/stderr.txt"; then
    echo "failed: $*" >&2; tail -n 20 "$OUT/stderr.txt" >&2; echo "FAILED FAILED"; return 0
  fi
  tail -n 1 "$OUT/time.txt" | awk '{printf "%s %.0f\n", $1, $2/1024}'
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

serve_and_pull() { # REPO DIR: serves DIR as model REPO on loopback and pulls it into $OUT/home
  local port; port=$(free_port)
  "$STANDIN" --port "$port" --repo "model:$1=$2" > "$OUT/standin.log" 2>&1 &
  STANDIN_PID=$!
  trap 'kill $STANDIN_PID 2>/dev/null || true' EXIT
  for _ in $(seq 1 600); do grep -q READY "$OUT/standin.log" && break; sleep 0.1; done
  LARDER_NO_PROGRESS=1 "$LARDER" --home "$OUT/home" --endpoint "http://127.0.0.1:$port" pull "$1" 2>/dev/null
}

converted_blob() { # JSON (larder convert --json output) -> path of the GGUF in the store
  find "$OUT/home" -type f -name "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["files"][0][2])' "$1")"
}

same_tensors() { # A.gguf B.gguf -> "N/M tensors byte-identical[, differ: ...]"
  .venv/bin/python - "$1" "$2" 2>&1 << 'PY' | tail -n 1
import sys
from gguf import GGUFReader
a, b = ({t.name: t for t in GGUFReader(p).tensors} for p in sys.argv[1:3])
if a.keys() != b.keys():
    print(f"tensor names differ: {sorted(a.keys() ^ b.keys())[:5]}"); sys.exit()
diff = [n for n in a if a[n].tensor_type != b[n].tensor_type
        or a[n].data.tobytes() != b[n].data.tobytes()]
print(f"{len(a) - len(diff)}/{len(a)} tensors byte-identical" + (f", differ: {diff[:5]}" if diff else ""))
PY
}

"""Importance matrices for the tests: writes random ones in both llama-imatrix formats, and
loads either into per-tensor weights exactly as llama-quantize's load_imatrix does
(GGUF: in_sum2 / count per expert, 1.0 for an expert with count 0; legacy: values / ncall).

usage: imatrix_util.py MODEL.gguf OUT gguf|dat [SEED]
  writes an imatrix for every 2-D/3-D weight of MODEL.gguf except token_embd.weight
"""
import struct
import sys

import numpy as np
from gguf import GGUFReader, GGUFWriter


def matrices(model_path):
    out = {}
    for t in GGUFReader(model_path).tensors:
        shape = [int(d) for d in t.shape]  # ggml order: ne0 first
        if len(shape) >= 2 and t.name.endswith(".weight") and t.name != "token_embd.weight":
            out[t.name] = (shape[0], shape[2] if len(shape) == 3 else 1)
    return out


def write(model_path, out, fmt, seed=0):
    rng = np.random.default_rng(seed)
    mats = matrices(model_path)
    if fmt == "dat":
        b = struct.pack("<i", len(mats))
        for i, (name, (ne0, n_mat)) in enumerate(sorted(mats.items())):
            # The first entry has no call count, which llama-quantize reads as undivided weights.
            ncall = 0 if i == 0 else 5
            sums = (rng.exponential(1.0, ne0 * n_mat) * max(ncall, 1)).astype(np.float32)
            nb = name.encode()
            b += struct.pack("<i", len(nb)) + nb + struct.pack("<ii", ncall, ne0 * n_mat) + sums.tobytes()
        b += struct.pack("<i", 7) + struct.pack("<i", 8) + b"tiny.txt"
        open(out, "wb").write(b)
        return
    w = GGUFWriter(out, arch="imatrix", use_temp_file=False)
    w.add_type("imatrix")
    w.add_array("imatrix.datasets", ["tiny.txt"])
    w.add_uint32("imatrix.chunk_count", 7)
    w.add_uint32("imatrix.chunk_size", 512)
    for name, (ne0, n_mat) in sorted(mats.items()):
        counts = rng.integers(1, 900, n_mat).astype(np.float32)
        if n_mat > 1:
            counts[1] = 0  # an expert never routed to
        sums = (rng.exponential(1.0, (n_mat, ne0)) * counts[:, None]).astype(np.float32)
        w.add_tensor(name + ".in_sum2", sums)
        w.add_tensor(name + ".counts", counts.reshape(n_mat, 1))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def load(path):
    """name -> float32 weights (n_mat * ne0), as llama-quantize computes them."""
    data = open(path, "rb").read()
    out = {}
    if data[:4] == b"GGUF":
        r = GGUFReader(path)
        sums, counts = {}, {}
        for t in r.tensors:
            if t.name.endswith(".in_sum2"):
                sums[t.name[: -len(".in_sum2")]] = np.asarray(t.data, dtype=np.float32).reshape(-1)
            elif t.name.endswith(".counts"):
                counts[t.name[: -len(".counts")]] = np.asarray(t.data, dtype=np.float32).reshape(-1)
        for name, s in sums.items():
            c = [float(x) for x in counts[name]]  # not rounded, as in llama-quantize
            ne0 = s.size // len(c)
            e = np.ones(s.size, dtype=np.float32)
            for j, cnt in enumerate(c):
                if cnt > 0:
                    e[j * ne0:(j + 1) * ne0] = s[j * ne0:(j + 1) * ne0] / np.float32(cnt)
            out[name] = e
        return out
    pos = 4
    (n,) = struct.unpack_from("<i", data, 0)
    for _ in range(n):
        (ln,) = struct.unpack_from("<i", data, pos)
        pos += 4
        name = data[pos:pos + ln].decode()
        pos += ln
        ncall, nval = struct.unpack_from("<ii", data, pos)
        pos += 8
        v = np.frombuffer(data, dtype="<f4", count=nval, offset=pos).astype(np.float32)
        pos += 4 * nval
        out[name] = v / np.float32(ncall) if ncall > 0 else v.copy()
    return out


if __name__ == "__main__":
    write(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 0)

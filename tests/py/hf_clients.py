"""Download acme/tiny (and acme/data) through a Larder mirror with huggingface_hub.

Usage: HF_ENDPOINT=<mirror> HF_HOME=<dir> python hf_clients.py <main commit>
Prints one JSON object mapping each scenario to the sha256 of what was downloaded.
With HF_HUB_OFFLINE=1 the same calls must be answered from the cache alone.
"""

import hashlib
import json
import os
import sys
from pathlib import Path

from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_digests(root):
    root = Path(root)
    return {
        p.relative_to(root).as_posix(): digest(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".cache" not in p.parts
    }


def main():
    commit = sys.argv[1]
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    out = {}
    out["snapshot"] = tree_digests(snapshot_download("acme/tiny"))
    out["allow_patterns"] = tree_digests(
        snapshot_download(
            "acme/tiny",
            revision=commit,
            allow_patterns=["*.json"],
            cache_dir=os.path.join(os.environ["HF_HOME"], "patterns"),
        )
    )
    out["by_branch"] = digest(hf_hub_download("acme/tiny", "config.json", revision="main"))
    out["by_commit"] = digest(hf_hub_download("acme/tiny", "model.safetensors", revision=commit))
    out["pr"] = digest(hf_hub_download("acme/tiny", "pr.txt", revision="refs/pr/1"))
    out["dataset"] = tree_digests(snapshot_download("acme/data", repo_type="dataset"))
    if not offline:
        try:
            hf_hub_download("acme/tiny", "does-not-exist.json")
            out["missing"] = "downloaded?!"
        except EntryNotFoundError:
            out["missing"] = "EntryNotFound"
        api = HfApi()
        out["info_sha"] = api.model_info("acme/tiny", revision="main").sha
        out["tree_files"] = sum(
            1
            for e in api.list_repo_tree("acme/tiny", recursive=True)
            if e.__class__.__name__ == "RepoFile"
        )
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

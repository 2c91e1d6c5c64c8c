//! The client matrix: releases of huggingface_hub that users still run (0.26.5 without hf_xet,
//! 0.36.0 and 1.10.0 with the hf_xet each one pins) and transformers, downloading through a
//! mirror that serves Xet. Every one gets identical bytes; those that carry hf_xet take the Xet
//! path, the others plain HTTP. The venvs are made by `.ci/setup` under `.venv-clients/`.

use std::path::{Path, PathBuf};

use hub_standin::{Hub, RepoKind};
use larder::serve::{ServeOptions, start};

use crate::common::{World, content, options, pull_with};
use crate::xet_mirror::{metric, run_python_in};

const REPO: &str = "acme/clients";

fn venv(name: &str) -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv-clients")
        .join(name)
        .join("bin/python");
    assert!(
        python.exists(),
        "no client venv at {}: run `.ci/setup` to create it",
        python.display()
    );
    python
}

const RECONSTRUCTIONS: &str = "larder_xet_reconstructions_total";

fn env<'a>(mirror: &'a str, hf_home: &'a Path) -> [(&'static str, &'a str); 2] {
    [
        ("HF_ENDPOINT", mirror),
        ("HF_HOME", hf_home.to_str().expect("a UTF-8 temporary path")),
    ]
}

/// Which transport a client version is expected to take, and whether it has hf_xet at all.
const HUB_CLIENTS: &[(&str, bool)] = &[
    ("hf-0.26.5", false),
    ("hf-0.36.0", true),
    ("hf-1.10.0", true),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_release_downloads_through_a_xet_mirror() {
    let data = content(91, 3 << 20);
    let config = br#"{"model_type": "bert", "hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 64, "vocab_size": 100}"#;
    let hub = Hub::new();
    hub.repo(RepoKind::Model, REPO)
        .lfs_file("model.safetensors", data.clone())
        .file("config.json", config.to_vec())
        .commit("main");
    let world = World::start(hub).await;
    pull_with(&world.larder(), &options(REPO, "main"))
        .await
        .0
        .expect("pull");
    let mirror = start(
        world.larder(),
        ServeOptions::new("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .expect("mirror starts");
    let url = mirror.url();

    let script = "import sys, os, huggingface_hub as h\n\
                  p = h.hf_hub_download(sys.argv[1], 'model.safetensors')\n\
                  d = h.snapshot_download(sys.argv[1])\n\
                  print(p); print(d)\n\
                  try:\n    import hf_xet; print('hf_xet', hf_xet.__name__)\n\
                  except ImportError: print('no hf_xet')";
    for (name, with_xet) in HUB_CLIENTS {
        let python = venv(name);
        let home = tempfile::tempdir().unwrap();
        let before = metric(&mirror, RECONSTRUCTIONS).await;
        let out = run_python_in(&python, script, &[REPO], &env(&url, home.path()));
        let mut lines = out.lines();
        let file = lines.next().unwrap();
        let snapshot = lines.next().unwrap();
        assert!(std::fs::read(file).unwrap() == data, "{name}: file bytes");
        assert!(
            std::fs::read(Path::new(snapshot).join("model.safetensors")).unwrap() == data,
            "{name}: snapshot bytes"
        );
        assert_eq!(
            std::fs::read(Path::new(snapshot).join("config.json")).unwrap(),
            config,
            "{name}: config"
        );
        let xet_used = metric(&mirror, RECONSTRUCTIONS).await > before;
        assert_eq!(
            out.contains("hf_xet hf_xet"),
            *with_xet,
            "{name}: hf_xet installed as expected\n{out}"
        );
        assert_eq!(
            xet_used, *with_xet,
            "{name}: Xet path taken exactly when the client has hf_xet"
        );
    }

    // transformers: a config and a weights file through its own download helpers.
    let python = venv("transformers");
    let home = tempfile::tempdir().unwrap();
    let out = run_python_in(
        &python,
        "import sys\n\
         from transformers import AutoConfig\n\
         from transformers.utils import cached_file\n\
         c = AutoConfig.from_pretrained(sys.argv[1])\n\
         print(c.model_type, c.hidden_size)\n\
         print(cached_file(sys.argv[1], 'model.safetensors'))",
        &[REPO],
        &env(&url, home.path()),
    );
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("bert 32"), "{out}");
    let weights = lines.next().unwrap();
    assert!(
        std::fs::read(weights).unwrap() == data,
        "transformers: bytes"
    );
    mirror.stop().await.unwrap();
}

//! Access tokens for the mirror and admin tokens for the job API.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn access_tokens_restrict_the_mirror_and_admin_tokens_the_job_api() {
    use larder::serve::access::{AccessRules, TokenSet};
    let world = World::start(build_hub()).await;
    fill(&world).await;
    let mut larder = world.larder();
    larder.client =
        larder::hub::HubClient::new(larder::hub::ClientSettings::new(world.server.url())).unwrap();
    let mut options = ServeOptions::new("127.0.0.1:0".parse().unwrap());
    options.pull_through = true;
    options.jobs.workers = 0; // accept jobs, run none
    let lab_hashed = format!("sha256:{}", sha256_hex(b"hf_lab_second"));
    options.access = AccessRules {
        tokens: TokenSet::parse(&["hf_lab".to_owned(), lab_hashed]).unwrap(),
        admin_tokens: TokenSet::parse(&["root-secret"]).unwrap(),
    };
    let mirror = start(larder, options).await.unwrap();
    let c = http();
    let info = format!("{}/api/models/acme/tiny", mirror.url());
    let r = c.get(&info).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        header(&r, "x-error-message")
            .unwrap()
            .contains("access token")
    );
    assert!(header(&r, "www-authenticate").is_some());
    for token in ["hf_wrong", "hf_lab_secon"] {
        let r = c.get(&info).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{token}");
    }
    for token in ["hf_lab", "hf_lab_second", "root-secret"] {
        let r = c.get(&info).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{token}");
    }
    let r = c
        .get(format!("{}/healthz", mirror.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .get(format!("{}/metrics", mirror.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Jobs: reading with a user token, changing only with an admin token (even from loopback).
    let jobs = format!("{}/v1/jobs", mirror.url());
    let body = json!({"kind": "pull", "repo": "acme/tiny"});
    let r = c
        .post(&jobs)
        .bearer_auth("hf_lab")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        header(&r, "x-error-message")
            .unwrap()
            .contains("admin token")
    );
    let r = c
        .post(&jobs)
        .bearer_auth("root-secret")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = c.get(&jobs).bearer_auth("hf_lab").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // A real client: huggingface_hub sends HF_TOKEN and gets through; without it, refused
    // (each run with its own cache, since the client would fall back to a cached copy).
    let script = "import sys\nfrom huggingface_hub import hf_hub_download\n\
                  p = hf_hub_download('acme/tiny', 'config.json')\n\
                  sys.stdout.write(open(p).read())";
    for token in [Some("hf_lab"), None] {
        let hf_home = tempfile::tempdir().unwrap();
        let mut command = Command::new(python());
        command.arg("-c").arg(script);
        client_env(&mut command, &mirror.url(), hf_home.path(), false);
        if let Some(token) = token {
            command.env("HF_TOKEN", token);
        }
        let output = run_output(command).await;
        assert_eq!(output.status.success(), token.is_some(), "{output:?}");
        if token.is_some() {
            let expected = &tiny_files()
                .into_iter()
                .find(|(p, _, _)| *p == "config.json")
                .unwrap()
                .1;
            assert_eq!(&output.stdout, expected);
        }
    }
    mirror.stop().await.unwrap();
}

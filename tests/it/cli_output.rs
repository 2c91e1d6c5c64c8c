//! How the CLI reports failures: one `error:` line with the chain, then the error's hint on a
//! `hint:` line of its own.

use crate::common::World;
use hub_standin::Hub;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_is_followed_by_its_hint() {
    let world = World::start(Hub::new()).await;
    // A registry written by a newer Larder.
    drop(world.larder());
    let conn = rusqlite::Connection::open(world.home.path().join("registry.db")).unwrap();
    conn.pragma_update(None, "user_version", 9_999).unwrap();
    drop(conn);
    let output = world.run(&["ls"]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = text.lines().collect();
    let error = lines
        .iter()
        .position(|l| l.starts_with("error: ") && l.contains("schema is version 9999"))
        .unwrap_or_else(|| panic!("no error line: {text}"));
    assert_eq!(
        lines.get(error + 1).copied(),
        Some("hint: upgrade larder, or point LARDER_HOME at another directory"),
        "{text}"
    );
}

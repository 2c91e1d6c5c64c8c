//! An in-process imitation of huggingface.co for Larder's tests and benchmarks.
//!
//! [`Hub`] holds repos, commits, refs and files (built with
//! [`Hub::repo`]); [`StandIn::start`] serves it over real HTTP on two
//! loopback listeners: the Hub API and `/resolve` on one, a "CDN" serving
//! LFS content through signed, expiring URLs on the other. Everything
//! follows `docs/hub-protocol.md`: hashes and oids (§4), JSON shapes (§3),
//! headers and redirects (§1.6, §2), error codes (§2.4).
//!
//! Tests arm [`Fault`]s (broken, corrupted, stalled or throttled bodies;
//! 503/429; expired CDN URLs) and read [`Stats`] (bytes served, request
//! counts, the request log).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use hub_standin::{Fault, Hub, RepoKind, StandIn};
//! let hub = Hub::new();
//! let sha = hub.repo(RepoKind::Model, "acme/tiny")
//!     .file("config.json", br#"{"a":1}"#.to_vec())
//!     .lfs_file("model.safetensors", vec![0u8; 4096])
//!     .commit("main");
//! let server = StandIn::start(hub).await?;
//! server.inject(Fault::cut_after(100).path("model.safetensors"));
//! println!("{} {sha}", server.url());
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod api;
mod body;
mod cdn;
mod context;
mod errors;
mod faults;
pub mod fixtures;
pub mod hash;
mod model;
mod paths;
mod renamed;
mod resolve;
mod server;
mod stats;
mod xet;

pub use context::{Pagination, Settings};
pub use faults::{Fault, FaultKind, Faults, Route, Target};
pub use model::{
    Commit, Content, FileEntry, Hub, LFS_THRESHOLD, LfsInfo, PreparedFile, RepoBuilder, RepoKind,
};
pub use server::{StandIn, StandInBuilder};
pub use stats::{RequestRecord, Stats};
pub use xet::{
    BodyRewrite, CasRequest, JsonRewrite, XET_ACCESS_TOKEN, XetCas, XetFault, XetFaults, XetRoute,
};

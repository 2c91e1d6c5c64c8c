//! The Hub protocol, as a client of an upstream (huggingface.co or any mirror of it).

pub mod client;
mod error;
pub mod info;
pub mod redirect;
mod retry;
mod types;

pub use client::{ClientSettings, HubClient};
pub use error::{HubError, UpstreamReply};
pub use info::FetchedInfo;
pub use retry::{RetryPolicy, retry};
pub use types::*;

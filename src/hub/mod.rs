//! The Hub protocol, as a client of an upstream (huggingface.co or any mirror of it).

pub mod client;
mod error;
mod retry;
mod types;

pub use client::{ClientSettings, HubClient};
pub use error::{HubError, UpstreamReply};
pub use retry::{RetryPolicy, retry};
pub use types::*;

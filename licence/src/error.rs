//! Error types of the crate.

use thiserror::Error;

/// The catalog file could not be used.
#[derive(Debug, Error)]
pub enum CatalogError {
    /// The TOML did not parse into catalog rows.
    #[error("failed to parse the licence catalog")]
    Parse(#[source] toml::de::Error),
    /// Rows parsed but break catalog rules (duplicates, missing fields).
    #[error("invalid licence catalog: {}", problems.join("; "))]
    Invalid {
        /// One message per problem.
        problems: Vec<String>,
    },
}

/// A licence policy could not be loaded.
#[derive(Debug, Error)]
pub enum PolicyError {
    /// The TOML did not parse (including unknown keys).
    #[error("failed to parse the licence policy")]
    Parse(#[source] toml::de::Error),
    /// `allow` / `review` / `deny` / `--accept-licence` entries that match no catalog licence.
    #[error("licence policy `{field}` names licences the catalog does not know: {}", ids.join(", "))]
    UnknownLicences {
        /// The list the entries came from.
        field: &'static str,
        /// The entries as written.
        ids: Vec<String>,
    },
    /// The same licence is in two lists.
    #[error("licence `{id}` is listed in both `{first}` and `{second}`")]
    Contradiction {
        /// The entry.
        id: String,
        /// One list.
        first: &'static str,
        /// The other list.
        second: &'static str,
    },
    /// An exception's `repo` is not a valid glob.
    #[error("invalid `repo` glob `{pattern}` in a policy exception")]
    Glob {
        /// The pattern as written.
        pattern: String,
        /// Why.
        #[source]
        source: globset::Error,
    },
}

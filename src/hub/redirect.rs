//! The Hub's redirects on API calls: renamed repos and case-mismatched ids answer with a
//! relative `307` to the canonical path (hub-protocol.md §1, "Repo id in the wrong case, or a
//! renamed repo"; recorded in huggingface_hub's cassette
//! `InferenceApiTest.test_simple_inference.yaml`: `GET /api/models/bert-base-uncased` →
//! `307 Location: /api/models/google-bert/bert-base-uncased`).
//!
//! Only redirects that stay on the endpoint's own origin are followed, a few hops at most: the
//! token goes with them, so a redirect elsewhere is refused rather than followed. The final URL
//! tells under which name the repo lives now ([`canonical_repo`]).

use percent_encoding::percent_decode_str;
use reqwest::StatusCode;
use url::Url;

use super::types::RepoId;

/// Most redirects followed for one API call (a rename and a case fix, with room to spare).
pub const MAX_API_REDIRECTS: usize = 5;

/// Whether `status` is one of the redirects the Hub uses for moved repos.
pub fn is_api_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 307 | 308)
}

/// Where an API redirect from `from` leads: `location` resolved against `from`, which must stay
/// on `endpoint`'s origin. `Err` says why it is refused.
pub fn api_redirect_target(
    from: &Url,
    location: Option<&str>,
    endpoint: &Url,
) -> Result<Url, &'static str> {
    let location = location.ok_or("redirect without a Location")?;
    let target = from.join(location).map_err(|_| "unparsable Location")?;
    if target.origin() != endpoint.origin() {
        return Err(
            "an API call was redirected to another origin; not following it with the token",
        );
    }
    Ok(target)
}

/// The repo id an API URL names: the segments after `api/{models|datasets}/` up to the next
/// keyword (`revision`, `tree`, `paths-info`) or the end, percent-decoded and validated.
/// `None` when the URL is not an API URL under `endpoint` or the id is not valid.
pub fn canonical_repo(url: &Url, endpoint: &Url) -> Option<RepoId> {
    let base = endpoint.path().trim_end_matches('/');
    let rest = url.path().strip_prefix(base)?.trim_start_matches('/');
    let mut segments = rest.split('/').filter(|s| !s.is_empty());
    if segments.next()? != "api" {
        return None;
    }
    segments.next()?; // models | datasets
    let mut id: Vec<String> = Vec::new();
    for segment in segments {
        if matches!(segment, "revision" | "tree" | "paths-info") || id.len() == 2 {
            break;
        }
        id.push(percent_decode_str(segment).decode_utf8().ok()?.into_owned());
    }
    RepoId::parse(&id.join("/")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_from_final_urls() {
        let endpoint = Url::parse("https://huggingface.co/").unwrap();
        let url = |p: &str| Url::parse(&format!("https://huggingface.co{p}")).unwrap();
        assert_eq!(
            canonical_repo(
                &url("/api/models/google-bert/bert-base-uncased/revision/main"),
                &endpoint
            )
            .unwrap()
            .as_str(),
            "google-bert/bert-base-uncased"
        );
        assert_eq!(
            canonical_repo(&url("/api/models/gpt2/revision/main"), &endpoint)
                .unwrap()
                .as_str(),
            "gpt2"
        );
        assert_eq!(
            canonical_repo(&url("/api/datasets/a/b"), &endpoint)
                .unwrap()
                .as_str(),
            "a/b"
        );
        assert!(canonical_repo(&url("/a/b/resolve/main/x"), &endpoint).is_none());
        assert!(canonical_repo(&url("/api/models/a%2F..%2Fb/revision/main"), &endpoint).is_none());
        // An endpoint with a path prefix.
        let prefixed = Url::parse("https://m.example/hub/").unwrap();
        let under = Url::parse("https://m.example/hub/api/models/o/n/revision/x").unwrap();
        assert_eq!(canonical_repo(&under, &prefixed).unwrap().as_str(), "o/n");
    }

    #[test]
    fn redirects_stay_on_the_origin() {
        let endpoint = Url::parse("https://huggingface.co/").unwrap();
        let from = Url::parse("https://huggingface.co/api/models/bert-base-uncased").unwrap();
        let to = api_redirect_target(
            &from,
            Some("/api/models/google-bert/bert-base-uncased"),
            &endpoint,
        )
        .unwrap();
        assert_eq!(
            to.as_str(),
            "https://huggingface.co/api/models/google-bert/bert-base-uncased"
        );
        assert!(api_redirect_target(&from, Some("https://evil.example/api/x"), &endpoint).is_err());
        assert!(
            api_redirect_target(&from, Some("http://huggingface.co/api/x"), &endpoint).is_err()
        );
        assert!(api_redirect_target(&from, None, &endpoint).is_err());
        assert!(is_api_redirect(StatusCode::TEMPORARY_REDIRECT));
        assert!(!is_api_redirect(StatusCode::NOT_MODIFIED));
    }
}

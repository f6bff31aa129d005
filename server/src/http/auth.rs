//! API authentication: when tokens are configured (`AETR_API_TOKENS`, `AETR_API_TOKENS_FILE`),
//! every request under `/api/v1` needs `Authorization: Bearer <token>`, except the callbacks,
//! whose own token is their credential, and the OpenAPI document, which holds no data.
//!
//! Tokens are kept as SHA-256 digests and compared in constant time, so neither a token's
//! length nor its prefix shows in the time of an answer. They are never logged.

use std::fmt;
use std::path::Path;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{web, Error};
use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiError;

/// The paths that never need a token.
const OPEN_PATHS: [&str; 3] =
    ["/api/v1/runs/complete", "/api/v1/runs/fail", "/api/v1/openapi.json"];

/// The API tokens that a server accepts. None: the API is open.
#[derive(Clone, Default)]
pub struct ApiTokens {
    digests: Vec<[u8; 32]>,
    /// `/metrics` needs a token too (`AETR_METRICS_REQUIRE_TOKEN`).
    guard_metrics: bool,
}

impl fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiTokens({} configured)", self.digests.len())
    }
}

impl ApiTokens {
    /// The tokens of `AETR_API_TOKENS` (comma-separated) and of `AETR_API_TOKENS_FILE` (one
    /// per line), together. Blank entries are skipped; a token with spaces inside is refused,
    /// since it could not be sent in an `Authorization` header.
    pub fn load(list: Option<&str>, file: Option<&Path>) -> anyhow::Result<ApiTokens> {
        let mut tokens: Vec<String> = Vec::new();
        if let Some(list) = list {
            tokens.extend(list.split(',').map(|t| t.trim().to_owned()));
        }
        if let Some(file) = file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read AETR_API_TOKENS_FILE {}", file.display()))?;
            tokens.extend(text.lines().map(|t| t.trim().to_owned()));
        }
        tokens.retain(|t| !t.is_empty());
        for (n, token) in tokens.iter().enumerate() {
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                bail!(
                    "API token number {} (of AETR_API_TOKENS, then AETR_API_TOKENS_FILE) has \
                     spaces or characters that are not printable ASCII",
                    n + 1
                );
            }
        }
        Ok(ApiTokens { digests: tokens.iter().map(|t| digest(t)).collect(), guard_metrics: false })
    }

    /// From now on `/metrics` needs a token (when tokens are on).
    pub fn guarding_metrics(self, guard: bool) -> ApiTokens {
        ApiTokens { guard_metrics: guard, ..self }
    }

    pub fn enabled(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Whether `presented` is one of the tokens. Every configured token is compared, in
    /// constant time.
    fn accepts(&self, presented: &str) -> bool {
        let presented = digest(presented);
        self.digests.iter().fold(false, |found, known| found | bool::from(known.ct_eq(&presented)))
    }

    /// Checks a request's `Authorization` header.
    fn check(&self, req: &ServiceRequest) -> Result<(), ApiError> {
        let header = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        let Some(header) = header else {
            return Err(ApiError::Unauthorized(
                "this server needs an API token: send Authorization: Bearer <token>".into(),
            ));
        };
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        match token {
            Some(token) if self.accepts(token) => Ok(()),
            Some(_) => Err(ApiError::Unauthorized("the API token is not valid".into())),
            None => Err(ApiError::Unauthorized(
                "the Authorization header must be Bearer <token>".into(),
            )),
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether a path needs a token (when tokens are on).
fn guarded(path: &str) -> bool {
    (path == "/api/v1" || path.starts_with("/api/v1/")) && !OPEN_PATHS.contains(&path)
}

/// The middleware (`actix_web::middleware::from_fn`): a request that needs a token and has no
/// valid one is answered 401 before any handler runs.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let tokens = req.app_data::<web::Data<ApiTokens>>().cloned();
    let needs_token = |t: &web::Data<ApiTokens>| {
        let path = req.path();
        t.enabled() && (guarded(path) || (t.guard_metrics && path == "/metrics"))
    };
    if let Some(tokens) = tokens.filter(needs_token) {
        if let Err(e) = tokens.check(&req) {
            return Err(e.into());
        }
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_list_and_the_file_and_are_matched_exactly() -> anyhow::Result<()> {
        let file = std::env::temp_dir().join(format!("aetr-tokens-{}", uuid::Uuid::new_v4()));
        std::fs::write(&file, "from-file\n\n  spaced-line  \n")?;
        let tokens = ApiTokens::load(Some(" a1 ,,b2"), Some(&file));
        std::fs::remove_file(&file)?;
        let tokens = tokens?;
        assert_eq!(tokens.digests.len(), 4);
        for good in ["a1", "b2", "from-file", "spaced-line"] {
            assert!(tokens.accepts(good), "{good}");
        }
        for bad in ["", "a", "a1 ", "A1", "b2b2", "from-file\n"] {
            assert!(!tokens.accepts(bad), "{bad:?}");
        }
        assert!(!format!("{tokens:?}").contains("a1"));
        assert!(ApiTokens::load(Some("has space"), None).is_err());
        assert!(!ApiTokens::load(Some(" , "), None)?.enabled());
        Ok(())
    }

    #[test]
    fn callbacks_and_the_openapi_document_are_open() {
        assert!(guarded("/api/v1/steps"));
        assert!(guarded("/api/v1/runs/0190/cancel"));
        assert!(guarded("/api/v1"));
        assert!(!guarded("/api/v1/runs/complete"));
        assert!(!guarded("/api/v1/runs/fail"));
        assert!(!guarded("/api/v1/openapi.json"));
        assert!(!guarded("/healthz"));
        assert!(!guarded("/runs/abc"));
    }
}

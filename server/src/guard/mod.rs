//! The SSRF guard: which URLs actions may POST to.
//!
//! aetr POSTs to URLs that its users supply, so without a guard anyone who may define a step
//! can make aetr reach the cloud metadata service or a loopback admin API. The rules
//! ([`rules`]) are checked
//! - when a tree is saved, on each action URL as written (a refusal is a 422);
//! - before each POST, on the URL as written (the rules may have changed since it was saved);
//! - on every address a host name resolves to, inside the HTTP client's resolver
//!   ([`resolve`]), so that the address checked is the address connected to, and nothing is
//!   resolved twice;
//! - on every redirect, which is off unless `AETR_ACTION_MAX_REDIRECTS` is set.
//!
//! System proxies are ignored. With `AETR_ACTION_PROXY` set, the proxy resolves host names, so
//! only the URL as written is checked.

pub mod resolve;
pub mod rules;

use std::sync::Arc;

use anyhow::Context;
use reqwest::redirect;

pub use rules::Rules;

impl aetr_engine::parse::UrlPolicy for Rules {
    fn check(&self, url: &url::Url) -> Result<(), String> {
        self.check_url(url).map_err(|refusal| refusal.to_string())
    }
}

/// Why a URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused by the action URL rules: {0}")]
pub struct Refusal(String);

impl Refusal {
    pub fn new(why: String) -> Refusal {
        Refusal(why)
    }

    /// The refusal in an error's chain of sources, if there is one.
    pub fn in_chain<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refusal> {
        let mut cause = Some(error);
        while let Some(e) = cause {
            if let Some(refusal) = e.downcast_ref::<Refusal>() {
                return Some(refusal);
            }
            cause = e.source();
        }
        None
    }
}

/// How actions reach their services.
#[derive(Debug, Clone)]
pub struct Egress {
    pub rules: Arc<Rules>,
    /// How many redirects a POST follows (0: none; a 3xx fails the node).
    pub max_redirects: usize,
    /// The proxy all POSTs go through, if any.
    pub proxy: Option<String>,
}

impl Egress {
    /// The HTTP client for actions' POSTs, with the rules in its resolver and redirect policy.
    pub fn client_builder(&self) -> anyhow::Result<reqwest::ClientBuilder> {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(Arc::new(resolve::GuardedResolver::new(self.rules.clone())))
            .redirect(self.redirect_policy());
        if let Some(proxy) = &self.proxy {
            let proxy = reqwest::Proxy::all(proxy)
                .with_context(|| format!("AETR_ACTION_PROXY {proxy:?} is not a proxy URL"))?;
            builder = builder.proxy(proxy);
        }
        Ok(builder)
    }

    fn redirect_policy(&self) -> redirect::Policy {
        if self.max_redirects == 0 {
            return redirect::Policy::none();
        }
        let (rules, max) = (self.rules.clone(), self.max_redirects);
        redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max {
                let why = format!("more than {max} redirects (AETR_ACTION_MAX_REDIRECTS)");
                return attempt.error(why);
            }
            match rules.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refusal) => attempt.error(refusal),
            }
        })
    }
}

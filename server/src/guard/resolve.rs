//! The HTTP client's resolver: the system's resolver (getaddrinfo, on a blocking thread, as
//! reqwest's own default does), then every address is checked. A name with any refused address
//! is refused as a whole, so that which address is tried first decides nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::Rules;

#[derive(Debug)]
pub struct GuardedResolver {
    rules: Arc<Rules>,
}

impl GuardedResolver {
    pub fn new(rules: Arc<Rules>) -> GuardedResolver {
        GuardedResolver { rules }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let rules = self.rules.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for addr in &addrs {
                rules.check_resolved(&host, addr.ip())?;
            }
            if addrs.is_empty() {
                let why = format!("{host} resolves to no address");
                return Err(std::io::Error::new(std::io::ErrorKind::NotFound, why).into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

//! The rules: entries of `AETR_ACTION_ALLOW` and `AETR_ACTION_DENY`, and the default deny list.
//!
//! An entry is one of:
//! - a URL prefix, `https://api.example.com/v1/`: URLs that start with it (after both are
//!   normalised, so `https://api.example.com` means `https://api.example.com/`);
//! - a host name, `svc.internal`, or every name below a domain, `*.example.com`, optionally with
//!   a port (`svc.internal:8080`);
//! - an IP address or CIDR, `10.0.0.0/8`, `fd00::/8`, `192.0.2.7`, optionally with a port
//!   (`127.0.0.1:9999`, `[::1]:9999`).
//!
//! A URL is refused when a deny entry matches it, or when the allow list is not empty and no
//! allow entry admits it. Names are decided by their resolved addresses: a deny CIDR refuses a
//! name that resolves into it; when the allow list has CIDRs, a name that no allow entry names
//! must resolve into one. An entry with a port matches only a URL with that port and a literal
//! host (resolution knows no port). IPv4-mapped IPv6 addresses are compared as IPv4.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;
use url::{Host, Url};

use super::Refusal;

/// The addresses that are always denied: link-local (where the cloud metadata services live),
/// the metadata addresses themselves, and the "this host" ranges.
pub const DEFAULT_DENY: [&str; 7] = [
    "169.254.0.0/16",
    "fe80::/10",
    "169.254.169.254",
    "fd00:ec2::254",
    "100.100.100.200",
    "0.0.0.0/8",
    "::/128",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Prefix(String),
    Host { name: String, below: bool, port: Option<u16> },
    Net { net: IpNet, port: Option<u16> },
}

/// One entry, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    text: String,
    pattern: Pattern,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Entry {
    type Err = String;

    fn from_str(text: &str) -> Result<Entry, String> {
        let text = text.trim();
        let pattern = if text.contains("://") {
            let url = Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(format!("{text:?} is not an http or https URL with a host"));
            }
            Pattern::Prefix(url.to_string())
        } else if let Ok(net) = text.parse::<IpNet>() {
            Pattern::Net { net: canonical_net(net), port: None }
        } else if let Ok(ip) = text.parse::<IpAddr>() {
            Pattern::Net { net: IpNet::from(ip.to_canonical()), port: None }
        } else if let Ok(addr) = text.parse::<SocketAddr>() {
            Pattern::Net { net: IpNet::from(addr.ip().to_canonical()), port: Some(addr.port()) }
        } else {
            host_pattern(text)?
        };
        Ok(Entry { text: text.to_owned(), pattern })
    }
}

/// `name`, `*.domain`, either with `:port`.
fn host_pattern(text: &str) -> Result<Pattern, String> {
    let bad = || {
        format!(
            "{text:?} is not a host name, a *.domain, an IP address, a CIDR or an http(s) URL \
             prefix"
        )
    };
    let (name, port) = match text.rsplit_once(':') {
        Some((name, port)) => (name, Some(port.parse::<u16>().map_err(|_| bad())?)),
        None => (text, None),
    };
    let (name, below) = match name.strip_prefix("*.") {
        Some(domain) => (domain, true),
        None => (name, false),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return Err(bad());
    }
    Ok(Pattern::Host { name, below, port })
}

fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).unwrap_or(net),
            None => net,
        },
        other => other,
    }
}

/// What a URL's host is, for matching.
struct Target<'a> {
    url: &'a Url,
    ip: Option<IpAddr>,
    name: Option<String>,
    port: Option<u16>,
}

impl<'a> Target<'a> {
    fn of(url: &'a Url) -> Target<'a> {
        let (ip, name) = match url.host() {
            Some(Host::Ipv4(ip)) => (Some(IpAddr::V4(ip)), None),
            Some(Host::Ipv6(ip)) => (Some(IpAddr::V6(ip).to_canonical()), None),
            Some(Host::Domain(name)) => {
                (None, Some(name.trim_end_matches('.').to_ascii_lowercase()))
            }
            None => (None, None),
        };
        Target { url, ip, name, port: url.port_or_known_default() }
    }
}

impl Entry {
    fn matches(&self, target: &Target<'_>) -> bool {
        let port_matches = |port: &Option<u16>| port.is_none() || *port == target.port;
        match &self.pattern {
            Pattern::Prefix(prefix) => target.url.as_str().starts_with(prefix.as_str()),
            Pattern::Host { port, .. } => {
                port_matches(port) && target.name.as_deref().is_some_and(|n| self.names(n))
            }
            Pattern::Net { net, port } => {
                port_matches(port) && target.ip.is_some_and(|ip| net.contains(&ip))
            }
        }
    }

    /// Whether this entry is about the host name `name` (its port aside).
    fn names(&self, name: &str) -> bool {
        match &self.pattern {
            Pattern::Host { name: own, below, .. } => {
                name == own
                    || (*below && name.strip_suffix(own.as_str()).is_some_and(|s| s.ends_with('.')))
            }
            Pattern::Prefix(prefix) => {
                Url::parse(prefix).ok().and_then(|u| u.host_str().map(str::to_owned)).as_deref()
                    == Some(name)
            }
            Pattern::Net { .. } => false,
        }
    }

    /// Whether this entry contains a resolved address. Entries with a port never do.
    fn contains(&self, ip: IpAddr) -> bool {
        matches!(&self.pattern, Pattern::Net { net, port: None } if net.contains(&ip))
    }

    fn is_net(&self) -> bool {
        matches!(self.pattern, Pattern::Net { .. })
    }
}

/// Where an entry came from, for the refusal's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Default,
    OwnAddress,
    Configured,
}

/// The allow and deny lists.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    allow: Vec<Entry>,
    deny: Vec<(Entry, Origin)>,
}

impl Rules {
    /// The rules of `AETR_ACTION_ALLOW` and `AETR_ACTION_DENY` (comma-separated), with the
    /// default deny list and the server's own addresses added to the deny list.
    pub fn new(allow: &str, deny: &str, own: &[String]) -> Result<Rules, String> {
        let parse = |list: &str, name: &str| -> Result<Vec<Entry>, String> {
            list.split(',')
                .filter(|e| !e.trim().is_empty())
                .map(|e| e.parse::<Entry>().map_err(|why| format!("{name}: {why}")))
                .collect()
        };
        let mut rules = Rules { allow: parse(allow, "AETR_ACTION_ALLOW")?, deny: Vec::new() };
        for entry in DEFAULT_DENY {
            rules.deny.push((entry.parse()?, Origin::Default));
        }
        for entry in own {
            rules.deny.push((entry.parse()?, Origin::OwnAddress));
        }
        for entry in parse(deny, "AETR_ACTION_DENY")? {
            rules.deny.push((entry, Origin::Configured));
        }
        Ok(rules)
    }

    /// Checks a URL as it is written: its literal IP, its host name and its prefix. A host
    /// name passes here if only its addresses can decide; [`Rules::check_resolved`] decides.
    pub fn check_url(&self, url: &Url) -> Result<(), Refusal> {
        let target = Target::of(url);
        let host =
            target.ip.map_or_else(|| target.name.clone().unwrap_or_default(), |ip| ip.to_string());
        if let Some((entry, origin)) = self.deny.iter().find(|(e, _)| e.matches(&target)) {
            return Err(Refusal::new(format!("{host} matches {}", denied_by(entry, *origin))));
        }
        if self.allow.is_empty() || self.allow.iter().any(|e| e.matches(&target)) {
            return Ok(());
        }
        // A name that no allow entry names may still resolve into an allowed CIDR. A name
        // that one does (with another path or port) is refused here, since resolution admits
        // the names that allow entries name.
        if let Some(name) = &target.name {
            if self.allow.iter().any(Entry::is_net) && !self.allow.iter().any(|e| e.names(name)) {
                return Ok(());
            }
        }
        Err(Refusal::new(format!("{url} is not admitted by AETR_ACTION_ALLOW")))
    }

    /// Checks an address that the host name `name` resolved to.
    pub fn check_resolved(&self, name: &str, ip: IpAddr) -> Result<(), Refusal> {
        let ip = ip.to_canonical();
        if let Some((entry, origin)) = self.deny.iter().find(|(e, _)| e.contains(ip)) {
            return Err(Refusal::new(format!(
                "{name} resolves to {ip}, which matches {}",
                denied_by(entry, *origin)
            )));
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if self.allow.is_empty() || self.allow.iter().any(|e| e.names(&name) || e.contains(ip)) {
            return Ok(());
        }
        Err(Refusal::new(format!(
            "{name} resolves to {ip}, which AETR_ACTION_ALLOW does not admit"
        )))
    }
}

fn denied_by(entry: &Entry, origin: Origin) -> String {
    match origin {
        Origin::Default => format!("the default deny entry {entry}"),
        Origin::OwnAddress => format!("aetr's own address {entry}"),
        Origin::Configured => format!("AETR_ACTION_DENY entry {entry}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn refused(rules: &Rules, text: &str) -> bool {
        rules.check_url(&url(text)).is_err()
    }

    #[test]
    fn entries_parse_and_name_what_is_wrong() {
        for good in [
            "10.0.0.0/8",
            "::1",
            "[::1]:80",
            "127.0.0.1:9999",
            "svc",
            "*.example.com",
            "api.example.com:8443",
            "https://api.example.com/v1/",
            "::ffff:169.254.0.0/112",
        ] {
            assert!(good.parse::<Entry>().is_ok(), "{good}");
        }
        for bad in ["ftp://x/", "a b", "*.", "host:port", "10.0.0.0/33", "http://"] {
            assert!(bad.parse::<Entry>().is_err(), "{bad}");
        }
        let e = Rules::new("", "10.0.0.0/40", &[]).err().unwrap_or_default();
        assert!(e.starts_with("AETR_ACTION_DENY: \"10.0.0.0/40\""), "{e}");
    }

    #[test]
    fn the_defaults_refuse_metadata_and_link_local_in_every_spelling() {
        let rules = Rules::new("", "", &["127.0.0.1:9999".into()]).unwrap_or_default();
        for bad in [
            "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://2852039166/",
            "http://0xa9.0xfe.0xa9.0xfe/",
            "http://169.254.1.1:8080/",
            "http://[fe80::1]/",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/",
            "http://0.0.0.0:80/",
            "http://[::]/",
            "http://127.0.0.1:9999/api/v1/steps",
        ] {
            assert!(refused(&rules, bad), "{bad}");
        }
        for good in [
            "http://127.0.0.1:8080/",
            "http://10.1.2.3/",
            "http://[::1]:9999/",
            "https://example.com/",
            "http://metadata.google.internal/",
        ] {
            assert!(!refused(&rules, good), "{good}");
        }
        assert!(rules
            .check_resolved(
                "metadata.google.internal",
                "169.254.169.254".parse().unwrap_or(IpAddr::from([0; 4]))
            )
            .is_err());
        assert!(rules
            .check_resolved("x", "::ffff:169.254.1.2".parse().unwrap_or(IpAddr::from([0; 4])))
            .is_err());
        assert!(rules
            .check_resolved("x", "10.0.0.1".parse().unwrap_or(IpAddr::from([0; 4])))
            .is_ok());
    }

    #[test]
    fn a_non_empty_allow_list_admits_only_its_entries_and_deny_wins() {
        let rules = Rules::new(
            "https://api.example.com/v1/, *.svc.internal, 10.0.0.0/8, 192.0.2.7:8080",
            "bad.svc.internal, 10.9.0.0/16",
            &[],
        )
        .unwrap_or_default();
        for good in [
            "https://api.example.com/v1/orders",
            "http://a.svc.internal/",
            "http://10.1.1.1/",
            "http://192.0.2.7:8080/",
            "http://other.example/",
        ] {
            assert!(!refused(&rules, good), "{good}");
        }
        for bad in [
            "https://api.example.com/v2/",
            "http://bad.svc.internal/",
            "http://10.9.1.1/",
            "http://192.0.2.7:8081/",
            "http://192.0.2.8/",
        ] {
            assert!(refused(&rules, bad), "{bad}");
        }
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or(IpAddr::from([0; 4]));
        assert!(rules.check_resolved("other.example", ip("10.2.3.4")).is_ok());
        assert!(rules.check_resolved("other.example", ip("192.0.2.7")).is_err());
        assert!(rules.check_resolved("other.example", ip("10.9.3.4")).is_err());
        assert!(rules.check_resolved("a.svc.internal", ip("203.0.113.1")).is_ok());
        assert!(rules.check_resolved("api.example.com", ip("203.0.113.1")).is_ok());
        assert!(rules.check_resolved("a.svc.internal", ip("169.254.169.254")).is_err());

        let names_only =
            Rules::new("*.svc.internal, https://api.example.com/v1/", "", &[]).unwrap_or_default();
        assert!(refused(&names_only, "http://svc.internal.evil.net/"));
        assert!(refused(&names_only, "https://api.example.com.evil.net/v1/"));
        assert!(refused(&names_only, "http://10.1.1.1/"));
        assert!(!refused(&names_only, "http://svc.internal/"));
        assert!(names_only.check_resolved("other.example", ip("10.2.3.4")).is_err());
    }
}

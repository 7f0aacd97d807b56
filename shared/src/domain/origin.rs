//! A web origin a tenant allows to call the Client API from a browser (CORS, DESIGN 9).

use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A serialized web origin, `scheme://host[:port]`, as a browser sends it in `Origin`: `https`
/// (or `http` for `localhost` only), a lowercase host, the port only when it is not the
/// scheme's default, no path, query, fragment or user info.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AllowedOrigin(String);

impl AllowedOrigin {
    /// Parses what an operator typed (`https://App.Example:443` is `https://app.example`).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let refuse = |why: &str| {
            Error::invalid_request(format!(
                "Invalid allowed origin {text:?}: {why}. Give scheme, host and port only, \
                 like https://app.example or http://localhost:3000."
            ))
        };
        let text = text.trim();
        let (scheme, rest) = text.split_once("://").ok_or_else(|| refuse("no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        if rest.contains(['/', '?', '#']) {
            return Err(refuse(
                "an origin has no path, query or fragment (not even `/`)",
            ));
        }
        if rest.contains('@') {
            return Err(refuse("an origin has no user info"));
        }
        let (host, port) =
            split_port(rest).ok_or_else(|| refuse("the port is not a number from 1 to 65535"))?;
        let host = host.to_ascii_lowercase();
        if !valid_host(&host) {
            return Err(refuse("the host is not a valid host name or address"));
        }
        let default_port = match scheme.as_str() {
            "https" => 443,
            "http" if host == "localhost" => 80,
            "http" => return Err(refuse("http is allowed for localhost only; use https")),
            _ => return Err(refuse("the scheme must be https (or http for localhost)")),
        };
        Ok(AllowedOrigin(match port {
            Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
            _ => format!("{scheme}://{host}"),
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a request's `Origin` header is this origin. Browsers send the serialized form,
    /// so this compares exactly, except for the case of the scheme and host.
    pub fn matches(&self, origin: &str) -> bool {
        self.0.eq_ignore_ascii_case(origin)
    }
}

/// Whether `origin` is the server's own: its host and port are `host`, the request's `Host`
/// (a page the service serves itself, or a native socket client that sends its URL's origin).
pub fn is_same_origin(origin: &str, host: Option<&str>) -> bool {
    let authority = origin.split_once("://").map(|(_, rest)| rest);
    match (authority, host) {
        (Some(authority), Some(host)) => authority.eq_ignore_ascii_case(host.trim()),
        _ => false,
    }
}

/// `host[:port]`, with a bracketed IPv6 host; `None` if a port is there and not 1..=65535.
fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let port_from = if authority.starts_with('[') {
        authority.find(']').map(|end| end + 1)?
    } else {
        authority.rfind(':').unwrap_or(authority.len())
    };
    let (host, port) = authority.split_at(port_from);
    match port.strip_prefix(':') {
        None if port.is_empty() => Some((host, None)),
        None => None,
        Some(digits) => {
            let port: u16 = digits.parse().ok().filter(|p| *p > 0)?;
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((host, Some(port)))
        }
    }
}

fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl TryFrom<String> for AllowedOrigin {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        AllowedOrigin::parse(&value)
    }
}

impl From<AllowedOrigin> for String {
    fn from(origin: AllowedOrigin) -> String {
        origin.0
    }
}

impl fmt::Display for AllowedOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AllowedOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AllowedOrigin({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for (given, stored) in [
            ("https://app.example", "https://app.example"),
            ("HTTPS://App.Example:443", "https://app.example"),
            ("https://app.example:8443", "https://app.example:8443"),
            ("http://localhost", "http://localhost"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("https://[::1]:8443", "https://[::1]:8443"),
            ("https://192.0.2.1", "https://192.0.2.1"),
        ] {
            assert_eq!(
                AllowedOrigin::parse(given).unwrap().as_str(),
                stored,
                "{given}"
            );
        }
        for bad in [
            "app.example",
            "https://app.example/",
            "https://app.example/login",
            "https://app.example?x=1",
            "https://user@app.example",
            "http://app.example",
            "http://127.0.0.1:3000",
            "ftp://app.example",
            "https://",
            "https://app.example:0",
            "https://app.example:99999",
            "https://app.example:+80",
            "https://app..example",
            "https://-app.example",
            "https://app_example.com",
            "null",
            "*",
        ] {
            let error = AllowedOrigin::parse(bad).unwrap_err();
            assert!(
                matches!(error, Error::InvalidRequest(_)),
                "{bad}: {error:?}"
            );
        }
    }

    #[test]
    fn a_stored_origin_matches_the_browsers_serialization() {
        let origin = AllowedOrigin::parse("https://app.example").unwrap();
        assert!(origin.matches("https://app.example"));
        assert!(!origin.matches("https://app.example.evil"));
        assert!(!origin.matches("https://evil.example"));
        assert!(!origin.matches("http://app.example"));
    }
}

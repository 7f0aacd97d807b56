//! The pre-built UI's values (issue #16, DESIGN 9): where it returns to, and a tenant's
//! branding. Each is validated strictly when it comes in, because the page puts it in a
//! header (`img-src` of the CSP), a CSS property or a navigation.

use crate::error::Error;
use serde::{Deserialize, Serialize};

/// The longest URL accepted for a redirect or a logo: it travels in every token of the action.
pub const MAX_URL_LENGTH: usize = 2048;
/// The longest tenant name the page shows.
pub const MAX_NAME_LENGTH: usize = 80;

/// Track's `redirectUrl`: an absolute `https` URL (or `http` to localhost), no user info, no
/// fragment. The page navigates there with `token` added to its query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUrl(String);

impl RedirectUrl {
    pub fn parse(text: &str) -> Result<Self, Error> {
        let url = web_url(text, "redirectUrl")?;
        Ok(RedirectUrl(url.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An absolute web URL: `https`, or `http` for localhost only (as allowed origins, DESIGN 9),
/// no user info, no fragment, at most [`MAX_URL_LENGTH`] bytes.
fn web_url(text: &str, what: &str) -> Result<url::Url, Error> {
    let refuse = |why: &str| Error::invalid_request(format!("{what} {why}."));
    if text.len() > MAX_URL_LENGTH {
        return Err(refuse(&format!(
            "must be at most {MAX_URL_LENGTH} characters"
        )));
    }
    let url = url::Url::parse(text).map_err(|_| refuse("must be an absolute URL"))?;
    let localhost = url.host_str() == Some("localhost");
    match url.scheme() {
        "https" => {}
        "http" if localhost => {}
        _ => return Err(refuse("must be https (or http to localhost)")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(refuse("must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("must not carry user info"));
    }
    if url.fragment().is_some() {
        return Err(refuse("must not have a fragment"));
    }
    Ok(url)
}

/// How the pre-built UI looks for one tenant (`tenant configure --ui-*`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UiBranding {
    /// Shown as the page's heading and title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An `https` image URL; its origin, and only it, is added to the page's `img-src`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_url: Option<String>,
    /// The accent colour, `#rrggbb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colour: Option<String>,
}

impl UiBranding {
    /// Checks each value: a name of printable characters, an `https` logo URL, a `#rrggbb`
    /// colour. Strict, so that nothing the page puts in a header or a style can be more.
    pub fn validated(self) -> Result<Self, Error> {
        if let Some(name) = &self.name
            && (name.trim().is_empty()
                || name.chars().count() > MAX_NAME_LENGTH
                || name.chars().any(char::is_control))
        {
            return Err(Error::invalid_request(format!(
                "The UI name must be 1 to {MAX_NAME_LENGTH} printable characters."
            )));
        }
        if let Some(logo) = &self.logo_url {
            // https only (not even localhost): the page is served over https in production.
            if !logo
                .get(..8)
                .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
            {
                return Err(Error::invalid_request(
                    "The UI logo URL must be an https URL.",
                ));
            }
            let url = web_url(logo, "The UI logo URL")?;
            // Its origin goes into the page's CSP (`img-src`): a host that is not a plain host
            // name or address (`a;sandbox`, `a,b`, `*`) would add directives or policies. The
            // same host check as an allowed origin (docs/security.md, "The pre-built UI").
            super::AllowedOrigin::parse(&url.origin().ascii_serialization()).map_err(|_| {
                Error::invalid_request(
                    "The UI logo URL's host must be a plain host name or address.",
                )
            })?;
        }
        if let Some(colour) = &self.colour
            && !is_hex_colour(colour)
        {
            return Err(Error::invalid_request(
                "The UI colour must be #rrggbb (six hex digits).",
            ));
        }
        Ok(self)
    }

    /// The logo's origin (`https://host[:port]`), for the CSP's `img-src`.
    /// Only an origin that passes the allowed-origin check, so nothing stored before that
    /// check existed can add to the CSP.
    pub fn logo_origin(&self) -> Option<String> {
        let url = url::Url::parse(self.logo_url.as_deref()?).ok()?;
        super::AllowedOrigin::parse(&url.origin().ascii_serialization())
            .ok()
            .map(|origin| origin.as_str().to_owned())
    }
}

fn is_hex_colour(text: &str) -> bool {
    text.len() == 7 && text.starts_with('#') && text[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_urls_are_https_or_localhost_without_user_info_or_fragment() {
        for good in [
            "https://app.example/done",
            "https://app.example:8443/a?b=c",
            "http://localhost:3000/cb",
        ] {
            assert!(RedirectUrl::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "/relative",
            "http://app.example/",
            "https://user:pw@app.example/",
            "https://app.example/#x",
            "ftp://app.example/",
            "",
        ] {
            assert!(RedirectUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(RedirectUrl::parse(&format!("https://a.example/{}", "x".repeat(2100))).is_err());
    }

    #[test]
    fn branding_is_checked_strictly() {
        let ok = UiBranding {
            name: Some("Acme <Bank>".into()),
            logo_url: Some("https://cdn.example:8443/logo.png".into()),
            colour: Some("#0a7cFF".into()),
        };
        assert_eq!(
            ok.clone().validated().unwrap().logo_origin().as_deref(),
            Some("https://cdn.example:8443")
        );
        let bad = [
            UiBranding {
                colour: Some("red".into()),
                ..UiBranding::default()
            },
            UiBranding {
                colour: Some("#0a7cff;x".into()),
                ..UiBranding::default()
            },
            UiBranding {
                logo_url: Some("http://cdn.example/logo.png".into()),
                ..UiBranding::default()
            },
            UiBranding {
                logo_url: Some("javascript:alert(1)".into()),
                ..UiBranding::default()
            },
            UiBranding {
                name: Some("a\nb".into()),
                ..UiBranding::default()
            },
            // Hosts that would add CSP directives or policies (found by the attacker review).
            UiBranding {
                logo_url: Some("https://a;sandbox/x.png".into()),
                ..UiBranding::default()
            },
            UiBranding {
                logo_url: Some("https://a;frame-ancestors/x.png".into()),
                ..UiBranding::default()
            },
            UiBranding {
                logo_url: Some("https://a,b/x.png".into()),
                ..UiBranding::default()
            },
            UiBranding {
                logo_url: Some("https://*/x.png".into()),
                ..UiBranding::default()
            },
            UiBranding {
                name: Some(" ".into()),
                ..UiBranding::default()
            },
        ];
        for branding in bad {
            assert!(branding.clone().validated().is_err(), "{branding:?}");
            // Stored before the check existed: still nothing in the CSP.
            if branding
                .logo_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
            {
                assert_eq!(branding.logo_origin(), None, "{branding:?}");
            }
        }
    }
}

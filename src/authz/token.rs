//! Reading the inbound request out of a `CheckRequest`: its headers (from
//! `headers` or, when Envoy sends raw headers, `header_map`), its bearer
//! token, and whether it tries to impersonate on its own.

use std::borrow::Cow;

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;

use super::error::DenyReason;

/// The inbound HTTP request as Envoy described it.
#[derive(Clone, Copy)]
pub struct InboundRequest<'a> {
    http: Option<&'a HttpRequest>,
}

impl<'a> InboundRequest<'a> {
    pub fn new(req: &'a CheckRequest) -> Self {
        let http = req
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref());
        InboundRequest { http }
    }

    /// Every header as (lowercase name, value), from whichever of the two
    /// encodings Envoy filled.
    pub fn headers(self) -> impl Iterator<Item = (&'a str, Cow<'a, str>)> {
        let plain = self.http.into_iter().flat_map(|h| {
            h.headers
                .iter()
                .map(|(k, v)| (k.as_str(), Cow::Borrowed(v.as_str())))
        });
        let raw = self
            .http
            .and_then(|h| h.header_map.as_ref())
            .into_iter()
            .flat_map(|m| {
                m.headers.iter().map(|h| {
                    let value = if h.raw_value.is_empty() {
                        Cow::Borrowed(h.value.as_str())
                    } else {
                        String::from_utf8_lossy(&h.raw_value)
                    };
                    (h.key.as_str(), value)
                })
            });
        plain.chain(raw)
    }

    /// The first value of a header, matched without regard to case.
    pub fn header(self, name: &str) -> Option<Cow<'a, str>> {
        self.headers()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Whether any `impersonate-*` header is present, in any case.
    pub fn has_impersonation_header(self) -> bool {
        self.headers()
            .any(|(k, _)| crate::k8s::impersonation::is_impersonation_header(k))
    }

    /// Whether Envoy sent the `headers` map, in which repeated lines of one
    /// header are joined with commas; with `encode_raw_headers` it sends
    /// `header_map` instead, one entry per line.
    pub fn headers_joined(self) -> bool {
        self.http.is_some_and(|h| !h.headers.is_empty())
    }

    pub fn method(self) -> &'a str {
        self.http.map_or("", |h| h.method.as_str())
    }

    pub fn path(self) -> &'a str {
        self.http.map_or("", |h| h.path.as_str())
    }
}

/// The bearer token, as the apiserver reads it: scheme `Bearer` in any
/// case, one space, a non-empty token.
pub fn bearer_token(authorization: Option<&str>) -> Result<&str, DenyReason> {
    let value = authorization.ok_or(DenyReason::MissingToken)?;
    let (scheme, rest) = value.split_once(' ').ok_or(DenyReason::MissingToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(DenyReason::MissingToken);
    }
    let token = rest.trim_start_matches(' ');
    let token = token.split(' ').next().unwrap_or_default();
    if token.is_empty() {
        return Err(DenyReason::MissingToken);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_rules() {
        let cases = [
            (None, Err(DenyReason::MissingToken)),
            (Some(""), Err(DenyReason::MissingToken)),
            (Some("Bearer"), Err(DenyReason::MissingToken)),
            (Some("Bearer "), Err(DenyReason::MissingToken)),
            (Some("Basic YWxpY2U6cHc="), Err(DenyReason::MissingToken)),
            (Some("Bearer abc"), Ok("abc")),
            (Some("bearer abc"), Ok("abc")),
            (Some("BEARER abc"), Ok("abc")),
            (Some("Bearer abc extra"), Ok("abc")),
        ];
        for (input, want) in cases {
            assert_eq!(bearer_token(input), want, "{input:?}");
        }
    }
}

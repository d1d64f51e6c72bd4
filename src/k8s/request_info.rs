//! Method and path → what the request does in the apiserver's terms: the
//! verb, and for a resource request its group, version, namespace,
//! resource, subresource and name.
//!
//! The rules are those of k8s.io/apiserver's `RequestInfoFactory`, so an
//! audit event built from an Envoy access-log entry matches what the
//! apiserver's own audit log says about the same request, and the stand-in
//! apiserver authorises what the real one would:
//!
//! - `/api/{version}/...` (core group) and `/apis/{group}/{version}/...`
//!   are resource requests; anything else (`/healthz`, `/version`,
//!   `/apis`, `/api/v1`) is a non-resource request whose verb is the
//!   lowercased HTTP method.
//! - `watch` and `proxy` right after the version are verbs in the path.
//! - `namespaces/{ns}/{resource}/...` scopes a resource to a namespace,
//!   except the namespace's own `status` and `finalize` subresources.
//! - `resource/name/subresource`; a `get` without a name is `list`, or
//!   `watch` when `?watch` says so; `fieldSelector=metadata.name=x` names
//!   the object; a `delete` without a name is `deletecollection`.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

/// What a request addresses, in the apiserver's terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    pub is_resource_request: bool,
    pub verb: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

const SPECIAL_VERBS: [&str; 2] = ["proxy", "watch"];
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// Resolves a request from its HTTP method and its request target (path
/// with optional query string, percent-encoded as sent).
pub fn resolve(method: &str, request_uri: &str) -> RequestInfo {
    let (raw_path, query) = match request_uri.split_once('?') {
        Some((p, q)) => (p, q),
        None => (request_uri, ""),
    };
    let path = percent_decode_str(raw_path).decode_utf8_lossy();
    let mut info = RequestInfo {
        verb: method.to_ascii_lowercase(),
        ..RequestInfo::default()
    };

    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if parts.len() < 3 || !matches!(parts[0], "api" | "apis") {
        return info;
    }
    let grouped = parts[0] == "apis";
    let mut rest = &parts[1..];
    if grouped {
        if rest.len() < 3 {
            return info;
        }
        info.api_group = rest[0].to_owned();
        rest = &rest[1..];
    }
    info.is_resource_request = true;
    info.api_version = rest[0].to_owned();
    rest = &rest[1..];

    let mut via_special_verb = false;
    if SPECIAL_VERBS.contains(&rest[0]) {
        if rest.len() < 2 {
            // The apiserver refuses such a request; record what we can.
            info.verb = rest[0].to_owned();
            return info;
        }
        info.verb = rest[0].to_owned();
        rest = &rest[1..];
        via_special_verb = true;
    } else {
        info.verb = match method.to_ascii_uppercase().as_str() {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_owned();
    }

    if rest[0] == "namespaces" && rest.len() > 1 {
        info.namespace = rest[1].to_owned();
        if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
            rest = &rest[2..];
        }
    }

    if rest.len() >= 3 && !via_special_verb {
        info.subresource = rest[2].to_owned();
    }
    if rest.len() >= 2 {
        info.name = rest[1].to_owned();
    }
    if !rest.is_empty() {
        info.resource = rest[0].to_owned();
    }

    if info.name.is_empty() && info.verb == "get" {
        let params = ListParams::parse(query);
        info.verb = if params.watch { "watch" } else { "list" }.to_owned();
        if let Some(name) = params.field_selector_name
            && is_valid_path_segment_name(&name)
        {
            info.name = name;
        }
    }
    if info.name.is_empty() && info.verb == "delete" {
        info.verb = "deletecollection".to_owned();
    }
    info
}

/// The list options that change the verb or the name.
struct ListParams {
    watch: bool,
    field_selector_name: Option<String>,
}

impl ListParams {
    fn parse(query: &str) -> ListParams {
        let mut watch: Option<bool> = None;
        let mut selector: Option<Cow<'_, str>> = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode_query(k);
            // Like Go's url.Values, only the first value of a key counts.
            match key.as_ref() {
                "watch" if watch.is_none() => {
                    let v = decode_query(v);
                    watch = Some(!(v == "0" || v.eq_ignore_ascii_case("false")));
                }
                "fieldSelector" if selector.is_none() => selector = Some(decode_query(v)),
                _ => {}
            }
        }
        ListParams {
            watch: watch.unwrap_or(false),
            field_selector_name: selector.and_then(|s| exact_match(&s, "metadata.name")),
        }
    }
}

fn decode_query(s: &str) -> Cow<'_, str> {
    if s.contains('+') {
        let spaced = s.replace('+', " ");
        Cow::Owned(percent_decode_str(&spaced).decode_utf8_lossy().into_owned())
    } else {
        percent_decode_str(s).decode_utf8_lossy()
    }
}

/// The value a field selector requires `field` to equal exactly (`=` or
/// `==`), as `fields.Selector.RequiresExactMatch` answers.
fn exact_match(selector: &str, field: &str) -> Option<String> {
    for term in split_unescaped(selector, ',') {
        let (key, op_len, value) = if let Some(i) = find_unescaped(&term, "!=") {
            (&term[..i], 0, &term[i + 2..])
        } else if let Some(i) = find_unescaped(&term, "==") {
            (&term[..i], 2, &term[i + 2..])
        } else if let Some(i) = find_unescaped(&term, "=") {
            (&term[..i], 1, &term[i + 1..])
        } else {
            // A malformed selector fails to parse as a whole.
            return None;
        };
        if op_len > 0 && key.trim() == field {
            return Some(unescape(value));
        }
    }
    None
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if escaped {
        cur.push('\\');
    }
    out.push(cur);
    out
}

fn find_unescaped(s: &str, needle: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        // Bytes, not `s[i..]`: `i` steps through multi-byte characters
        // (and past a backslash's next byte), and a `str` slice there panics.
        if bytes[i..].starts_with(needle.as_bytes()) {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    out
}

/// `path.IsValidPathSegmentName`: a name that can be used in a URL path.
fn is_valid_path_segment_name(name: &str) -> bool {
    name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (method, uri, verb, group, version, namespace, resource, subresource, name, resource request)
    type Row = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        bool,
    );

    #[rustfmt::skip]
    const TABLE: &[Row] = &[
        // kubectl get pods
        ("GET", "/api/v1/namespaces/default/pods?limit=500", "list", "", "v1", "default", "pods", "", "", true),
        // kubectl get pods -A
        ("GET", "/api/v1/pods?limit=500", "list", "", "v1", "", "pods", "", "", true),
        // kubectl get pod web-0
        ("GET", "/api/v1/namespaces/default/pods/web-0", "get", "", "v1", "default", "pods", "", "web-0", true),
        // kubectl get pods -w
        ("GET", "/api/v1/namespaces/default/pods?watch=true&resourceVersion=10", "watch", "", "v1", "default", "pods", "", "", true),
        ("GET", "/api/v1/namespaces/default/pods?watch=0", "list", "", "v1", "default", "pods", "", "", true),
        ("GET", "/api/v1/namespaces/default/pods?watch=FALSE", "list", "", "v1", "default", "pods", "", "", true),
        ("GET", "/api/v1/namespaces/default/pods?watch=", "watch", "", "v1", "default", "pods", "", "", true),
        // kubectl get pod web-0 -w
        ("GET", "/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dweb-0&watch=true", "watch", "", "v1", "default", "pods", "", "web-0", true),
        ("GET", "/api/v1/namespaces/default/pods?fieldSelector=status.phase%3DRunning,metadata.name%3D%3Dweb-1", "list", "", "v1", "default", "pods", "", "web-1", true),
        ("GET", "/api/v1/namespaces/default/pods?fieldSelector=metadata.name!%3Dweb-1", "list", "", "v1", "default", "pods", "", "", true),
        // legacy watch path
        ("GET", "/api/v1/watch/namespaces/default/pods", "watch", "", "v1", "default", "pods", "", "", true),
        ("GET", "/api/v1/watch/namespaces/default/pods/web-0", "watch", "", "v1", "default", "pods", "", "web-0", true),
        ("GET", "/api/v1/proxy/namespaces/default/pods/web-0/metrics", "proxy", "", "v1", "default", "pods", "", "web-0", true),
        // kubectl create -f pod.yaml -n team
        ("POST", "/api/v1/namespaces/team/pods?fieldManager=kubectl-create", "create", "", "v1", "team", "pods", "", "", true),
        // kubectl exec (SPDY: POST; WebSocket: GET)
        ("POST", "/api/v1/namespaces/default/pods/web-0/exec?command=sh&stdin=true&tty=true", "create", "", "v1", "default", "pods", "exec", "web-0", true),
        ("GET", "/api/v1/namespaces/default/pods/web-0/exec?command=ls", "get", "", "v1", "default", "pods", "exec", "web-0", true),
        ("GET", "/api/v1/namespaces/default/pods/web-0/log?follow=true", "get", "", "v1", "default", "pods", "log", "web-0", true),
        ("POST", "/api/v1/namespaces/default/pods/web-0/portforward", "create", "", "v1", "default", "pods", "portforward", "web-0", true),
        // kubectl apply / edit / delete
        ("PATCH", "/apis/apps/v1/namespaces/default/deployments/web", "patch", "apps", "v1", "default", "deployments", "", "web", true),
        ("PUT", "/apis/apps/v1/namespaces/default/deployments/web/scale", "update", "apps", "v1", "default", "deployments", "scale", "web", true),
        ("DELETE", "/api/v1/namespaces/default/pods/web-0", "delete", "", "v1", "default", "pods", "", "web-0", true),
        ("DELETE", "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb", "deletecollection", "", "v1", "default", "pods", "", "", true),
        // namespaces themselves
        ("GET", "/api/v1/namespaces", "list", "", "v1", "", "namespaces", "", "", true),
        ("GET", "/api/v1/namespaces/team", "get", "", "v1", "team", "namespaces", "", "team", true),
        ("PUT", "/api/v1/namespaces/team/finalize", "update", "", "v1", "team", "namespaces", "finalize", "team", true),
        ("GET", "/api/v1/namespaces/team/status", "get", "", "v1", "team", "namespaces", "status", "team", true),
        // CRDs in their own group, namespaced and cluster-scoped
        ("GET", "/apis/stable.example.com/v1/namespaces/default/crontabs", "list", "stable.example.com", "v1", "default", "crontabs", "", "", true),
        ("GET", "/apis/stable.example.com/v1/namespaces/default/crontabs/nightly/status", "get", "stable.example.com", "v1", "default", "crontabs", "status", "nightly", true),
        ("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/crontabs.stable.example.com", "get", "apiextensions.k8s.io", "v1", "", "customresourcedefinitions", "", "crontabs.stable.example.com", true),
        ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "create", "authorization.k8s.io", "v1", "", "selfsubjectaccessreviews", "", "", true),
        // non-resource requests and discovery
        ("GET", "/healthz", "get", "", "", "", "", "", "", false),
        ("GET", "/readyz?verbose", "get", "", "", "", "", "", "", false),
        ("GET", "/version", "get", "", "", "", "", "", "", false),
        ("GET", "/api", "get", "", "", "", "", "", "", false),
        ("GET", "/api/v1", "get", "", "", "", "", "", "", false),
        ("GET", "/apis", "get", "", "", "", "", "", "", false),
        ("GET", "/apis/apps/v1", "get", "", "", "", "", "", "", false),
        ("POST", "/logs/foo", "post", "", "", "", "", "", "", false),
        ("GET", "/", "get", "", "", "", "", "", "", false),
        ("GET", "", "get", "", "", "", "", "", "", false),
        // odd inputs do not panic
        ("GET", "/api/v1/watch", "watch", "", "v1", "", "", "", "", true),
        ("OPTIONS", "/api/v1/pods", "", "", "v1", "", "pods", "", "", true),
        ("GET", "/api/v1/namespaces/a%2Fb/pods/x", "get", "", "v1", "a", "b", "x", "pods", true),
        ("GET", "/api/v1/pods?fieldSelector=metadata.name%3D..", "list", "", "v1", "", "pods", "", "", true),
        ("GET", "/api/v1/pods?fieldSelector=bad", "list", "", "v1", "", "pods", "", "", true),
    ];

    /// Found by the `request_info` fuzz target: a field selector with a
    /// multi-byte character panicked on a `str` slice inside it.
    #[test]
    fn field_selectors_with_multi_byte_characters() {
        let cases = [
            ("/api/v1/pods?fieldSelector=%C3%A9", "list", ""),
            ("/api/v1/pods?fieldSelector=%5C%C3%A9%3D1", "list", ""),
            (
                "/api/v1/pods?fieldSelector=sp%C3%A9c%3D%C3%A9,metadata.name%3Dw%C3%A9b",
                "list",
                "wéb",
            ),
        ];
        for (uri, verb, name) in cases {
            let got = resolve("GET", uri);
            assert_eq!(
                (got.verb.as_str(), got.name.as_str()),
                (verb, name),
                "{uri}"
            );
        }
    }

    #[test]
    fn matches_the_apiserver_request_info_resolver() {
        for &(method, uri, verb, group, version, ns, resource, sub, name, is_res) in TABLE {
            let got = resolve(method, uri);
            let want = RequestInfo {
                is_resource_request: is_res,
                verb: verb.into(),
                api_group: group.into(),
                api_version: version.into(),
                namespace: ns.into(),
                resource: resource.into(),
                subresource: sub.into(),
                name: name.into(),
            };
            assert_eq!(got, want, "{method} {uri}");
        }
    }
}

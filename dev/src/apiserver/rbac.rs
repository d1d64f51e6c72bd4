//! Request attributes (the apiserver's `RequestInfo`) and a tiny RBAC
//! table: allow-only rules bound to users or groups, evaluated like the RBAC
//! authorizer (any matching rule allows; nothing matching denies).

use serde::Deserialize;

use kube_oidc_authz::k8s::request_info;
use kube_oidc_authz::k8s::user_info::{ALL_AUTHENTICATED, UserInfo};

/// What a request does, as the authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    pub user: UserInfo,
    pub verb: String,
    pub resource_request: bool,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    pub path: String,
}

impl Attributes {
    /// A resource request.
    pub fn resource(
        user: UserInfo,
        verb: &str,
        api_group: &str,
        resource: &str,
        subresource: &str,
        namespace: &str,
        name: &str,
    ) -> Self {
        Attributes {
            user,
            verb: verb.to_owned(),
            resource_request: true,
            api_group: api_group.to_owned(),
            api_version: String::new(),
            namespace: namespace.to_owned(),
            resource: resource.to_owned(),
            subresource: subresource.to_owned(),
            name: name.to_owned(),
            path: String::new(),
        }
    }

    /// What a request does, resolved by the product's
    /// [`request_info`] (the apiserver's `RequestInfoFactory` rules: `watch`
    /// and `proxy` paths, `?watch`, field-selected names, percent-decoding).
    /// `path` is the request path as sent, `query` its query string.
    pub fn from_request(user: UserInfo, method: &http::Method, path: &str, query: &str) -> Self {
        let info = if query.is_empty() {
            request_info::resolve(method.as_str(), path)
        } else {
            request_info::resolve(method.as_str(), &format!("{path}?{query}"))
        };
        Attributes {
            user,
            verb: info.verb,
            resource_request: info.is_resource_request,
            api_group: info.api_group,
            api_version: info.api_version,
            namespace: info.namespace,
            resource: info.resource,
            subresource: info.subresource,
            name: info.name,
            path: path.to_owned(),
        }
    }
}

/// One allow rule and who it is bound to. `*` matches anything in every
/// list. A rule with `namespace` applies only there (a RoleBinding);
/// without, everywhere (a ClusterRoleBinding).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default)]
    pub api_groups: Vec<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub resource_names: Vec<String>,
    #[serde(default)]
    pub non_resource_urls: Vec<String>,
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

impl Rule {
    fn binds(&self, user: &UserInfo) -> bool {
        self.users.contains(&user.username) || self.groups.iter().any(|g| user.groups.contains(g))
    }

    fn matches(&self, a: &Attributes) -> bool {
        let has = |list: &[String], v: &str| list.iter().any(|x| x == "*" || x == v);
        if !has(&self.verbs, &a.verb) {
            return false;
        }
        if !a.resource_request {
            return self.namespace.is_none()
                && self.non_resource_urls.iter().any(|u| {
                    u == "*"
                        || *u == a.path
                        || u.strip_suffix('*').is_some_and(|p| a.path.starts_with(p))
                });
        }
        if self.namespace.as_ref().is_some_and(|ns| *ns != a.namespace) {
            return false;
        }
        let resource = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        // As RBAC's ResourceMatches: `*`, the exact `resource/subresource`,
        // or `*/subresource`.
        let resource_ok = self.resources.iter().any(|r| {
            r == "*"
                || *r == resource
                || (!a.subresource.is_empty()
                    && r.strip_prefix("*/") == Some(a.subresource.as_str()))
        });
        has(&self.api_groups, &a.api_group)
            && resource_ok
            && (self.resource_names.is_empty() || self.resource_names.contains(&a.name))
    }

    /// The table used when none is given: the product guide's RBAC example.
    /// `banyan:any-employee-personal-device` reads pods (and their logs) in
    /// `default`; `banyan:all-admins-corporate-device` is cluster-admin;
    /// and, for end-user impersonation, `banyan:developers` may act as
    /// `banyan:bob@example.com` in the pod readers' group and in
    /// `banyan:readers,eu` (a group name with a comma), with uid `bob-uid`
    /// (nothing else).
    pub fn guide_example() -> Vec<Rule> {
        vec![
            Rule {
                groups: s(&["banyan:all-admins-corporate-device"]),
                verbs: s(&["*"]),
                api_groups: s(&["*"]),
                resources: s(&["*"]),
                non_resource_urls: s(&["*"]),
                ..Rule::default()
            },
            Rule {
                groups: s(&["banyan:any-employee-personal-device"]),
                namespace: Some("default".to_owned()),
                verbs: s(&["get", "list", "watch"]),
                api_groups: s(&[""]),
                resources: s(&["pods", "pods/log"]),
                ..Rule::default()
            },
            Rule {
                groups: s(&["banyan:developers"]),
                verbs: s(&["impersonate"]),
                api_groups: s(&[""]),
                resources: s(&["users", "groups"]),
                resource_names: s(&[
                    "banyan:bob@example.com",
                    "banyan:any-employee-personal-device",
                    "banyan:readers,eu",
                ]),
                ..Rule::default()
            },
            Rule {
                groups: s(&["banyan:developers"]),
                verbs: s(&["impersonate"]),
                api_groups: s(&["authentication.k8s.io"]),
                resources: s(&["uids"]),
                resource_names: s(&["bob-uid"]),
                ..Rule::default()
            },
        ]
    }
}

/// The rules in force: the bootstrap policy every cluster has, the proxy's
/// right to impersonate, and the table given at start.
#[derive(Debug, Clone)]
pub struct Rbac {
    rules: Vec<Rule>,
}

impl Rbac {
    /// `proxy` is the service account allowed to impersonate (with
    /// `userextras`, only those extra keys, as the chart's ClusterRole
    /// grants them; `None`, any); `table` the cluster's own bindings.
    pub fn new(proxy: &str, userextras: Option<&[String]>, table: Vec<Rule>) -> Self {
        let impersonate = match userextras {
            None => Rule {
                users: s(&[proxy]),
                verbs: s(&["impersonate"]),
                api_groups: s(&["", "authentication.k8s.io"]),
                resources: s(&["*"]),
                ..Rule::default()
            },
            Some(keys) => Rule {
                users: s(&[proxy]),
                verbs: s(&["impersonate"]),
                api_groups: s(&["", "authentication.k8s.io"]),
                resources: ["users", "groups", "serviceaccounts", "uids"]
                    .into_iter()
                    .map(str::to_owned)
                    .chain(keys.iter().map(|k| format!("userextras/{k}")))
                    .collect(),
                ..Rule::default()
            },
        };
        let mut rules = vec![
            // system:masters is cluster-admin, as in every cluster.
            Rule {
                groups: s(&["system:masters"]),
                verbs: s(&["*"]),
                api_groups: s(&["*"]),
                resources: s(&["*"]),
                non_resource_urls: s(&["*"]),
                ..Rule::default()
            },
            // system:discovery, system:public-info-viewer.
            Rule {
                groups: s(&[ALL_AUTHENTICATED]),
                verbs: s(&["get"]),
                non_resource_urls: s(&[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/version",
                    "/version/",
                    "/healthz",
                    "/livez",
                    "/readyz",
                    "/openapi",
                    "/openapi/*",
                ]),
                ..Rule::default()
            },
            // system:basic-user.
            Rule {
                groups: s(&[ALL_AUTHENTICATED]),
                verbs: s(&["create"]),
                api_groups: s(&["authentication.k8s.io", "authorization.k8s.io"]),
                resources: s(&[
                    "selfsubjectreviews",
                    "selfsubjectaccessreviews",
                    "selfsubjectrulesreviews",
                ]),
                ..Rule::default()
            },
            // The proxy's ClusterRole, as the Helm chart creates it.
            impersonate,
            // ... with token passthrough on, as the chart grants it.
            Rule {
                users: s(&[proxy]),
                verbs: s(&["create"]),
                api_groups: s(&["authentication.k8s.io"]),
                resources: s(&["tokenreviews"]),
                ..Rule::default()
            },
            // ... with end-user impersonation on, as the chart grants it.
            Rule {
                users: s(&[proxy]),
                verbs: s(&["create"]),
                api_groups: s(&["authorization.k8s.io"]),
                resources: s(&["subjectaccessreviews"]),
                ..Rule::default()
            },
        ];
        rules.extend(table);
        Rbac { rules }
    }

    /// Whether any rule bound to the user allows the request.
    pub fn allows(&self, a: &Attributes) -> bool {
        self.rules.iter().any(|r| r.binds(&a.user) && r.matches(a))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::apiserver::status::ApiError;

    fn alice(groups: &[&str]) -> UserInfo {
        let mut g = s(groups);
        g.push(ALL_AUTHENTICATED.to_owned());
        UserInfo {
            username: "banyan:alice@example.com".into(),
            uid: String::new(),
            groups: g,
            extra: BTreeMap::new(),
        }
    }

    #[test]
    fn parses_request_info() {
        let u = alice(&[]);
        let cases = [
            (
                "GET",
                "/api/v1/namespaces/default/pods",
                "",
                "list",
                "pods",
                "",
                "default",
                "",
            ),
            (
                "GET",
                "/api/v1/namespaces/default/pods",
                "watch=true&resourceVersion=1",
                "watch",
                "pods",
                "",
                "default",
                "",
            ),
            // The legacy watch path: `watch` is the verb, not a resource.
            (
                "GET",
                "/api/v1/watch/namespaces/default/pods",
                "",
                "watch",
                "pods",
                "",
                "default",
                "",
            ),
            // Percent-encoded names are decoded, as the apiserver does.
            (
                "GET",
                "/api/v1/namespaces/default/configmaps/a%3Ab",
                "",
                "get",
                "configmaps",
                "",
                "default",
                "a:b",
            ),
            (
                "GET",
                "/api/v1/namespaces/default/pods/web",
                "",
                "get",
                "pods",
                "",
                "default",
                "web",
            ),
            (
                "GET",
                "/api/v1/namespaces/default/pods/web/exec",
                "command=cat",
                "get",
                "pods",
                "exec",
                "default",
                "web",
            ),
            (
                "POST",
                "/api/v1/namespaces/default/pods/web/exec",
                "",
                "create",
                "pods",
                "exec",
                "default",
                "web",
            ),
            (
                "POST",
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                "",
                "create",
                "selfsubjectreviews",
                "",
                "",
                "",
            ),
            // A namespace object: the apiserver's resolver sets the
            // request's namespace to the namespace's own name.
            (
                "GET",
                "/api/v1/namespaces/kube-system",
                "",
                "get",
                "namespaces",
                "",
                "kube-system",
                "kube-system",
            ),
            (
                "DELETE",
                "/api/v1/namespaces/default/pods",
                "",
                "deletecollection",
                "pods",
                "",
                "default",
                "",
            ),
        ];
        for (m, path, q, verb, res, sub, ns, name) in cases {
            let a = Attributes::from_request(u.clone(), &m.parse().unwrap(), path, q);
            assert!(a.resource_request, "{path}");
            assert_eq!(
                (
                    a.verb.as_str(),
                    a.resource.as_str(),
                    a.subresource.as_str(),
                    a.namespace.as_str(),
                    a.name.as_str()
                ),
                (verb, res, sub, ns, name),
                "{m} {path}"
            );
        }
        for path in [
            "/api",
            "/apis",
            "/api/v1",
            "/apis/authentication.k8s.io/v1",
            "/version",
            "/healthz",
        ] {
            let a = Attributes::from_request(u.clone(), &http::Method::GET, path, "");
            assert!(!a.resource_request, "{path}");
            assert_eq!(a.verb, "get");
        }
    }

    #[test]
    fn guide_example_table() {
        let rbac = Rbac::new("system:serviceaccount:x:proxy", None, Rule::guide_example());
        let reader = alice(&["banyan:any-employee-personal-device", "banyan:developers"]);
        let admin = alice(&["banyan:all-admins-corporate-device"]);
        let cases = [
            (&reader, "GET", "/api/v1/namespaces/default/pods", "", true),
            (
                &reader,
                "GET",
                "/api/v1/namespaces/default/pods",
                "watch=true",
                true,
            ),
            (
                &reader,
                "GET",
                "/api/v1/namespaces/default/pods/web/log",
                "",
                true,
            ),
            (
                &reader,
                "GET",
                "/api/v1/namespaces/kube-system/pods",
                "",
                false,
            ),
            (
                &reader,
                "GET",
                "/api/v1/namespaces/default/services",
                "",
                false,
            ),
            (
                &reader,
                "POST",
                "/api/v1/namespaces/default/pods/web/exec",
                "",
                false,
            ),
            (&reader, "GET", "/api", "", true),
            (&reader, "GET", "/metrics", "", false),
            (
                &reader,
                "POST",
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                "",
                true,
            ),
            (
                &admin,
                "GET",
                "/api/v1/namespaces/default/services",
                "",
                true,
            ),
            (&admin, "GET", "/metrics", "", true),
        ];
        for (u, m, path, q, want) in cases {
            let a = Attributes::from_request(u.clone(), &m.parse().unwrap(), path, q);
            assert_eq!(rbac.allows(&a), want, "{:?} {m} {path}", u.groups);
        }
    }

    #[test]
    fn forbidden_messages_have_the_apiserver_shape() {
        let u = alice(&[]);
        let cases = [
            (
                "GET",
                "/api/v1/namespaces/default/services",
                "services is forbidden: User \"banyan:alice@example.com\" cannot list resource \"services\" in API group \"\" in the namespace \"default\"",
            ),
            (
                "GET",
                "/api/v1/nodes",
                "nodes is forbidden: User \"banyan:alice@example.com\" cannot list resource \"nodes\" in API group \"\" at the cluster scope",
            ),
            (
                "POST",
                "/api/v1/namespaces/default/pods/web/exec",
                "pods \"web\" is forbidden: User \"banyan:alice@example.com\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"default\"",
            ),
            (
                "GET",
                "/apis/apps/v1/namespaces/default/deployments",
                "deployments.apps is forbidden: User \"banyan:alice@example.com\" cannot list resource \"deployments\" in API group \"apps\" in the namespace \"default\"",
            ),
            (
                "GET",
                "/metrics",
                "forbidden: User \"banyan:alice@example.com\" cannot get path \"/metrics\"",
            ),
        ];
        for (m, path, want) in cases {
            let a = Attributes::from_request(u.clone(), &m.parse().unwrap(), path, "");
            let e = ApiError::forbidden(&a);
            assert_eq!(e.message, want);
            assert_eq!(e.code, 403);
            assert_eq!(e.body()["reason"], "Forbidden");
        }
    }
}

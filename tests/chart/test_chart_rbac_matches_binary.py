"""The ClusterRole grants what the authz binary does with the apiserver for
every feature the values turn on, and the feature-specific rights only when
the feature is on.

What the binary needs, per feature: `impersonate` on the users, groups and
uids it forwards and on `userextras/<key>` for every extra key it can write
(the credential id, the client address, static extras, and with end-user
impersonation the original-user keys, read here from the binary's source,
plus the keys users may ask for); `serviceaccounts` when `system:`
identities are not refused; `create` on `tokenreviews` for token
passthrough and on `subjectaccessreviews` for end-user impersonation."""

from __future__ import annotations

import re

import pytest
from chart_helpers import ROOT, load_values, render

BASE = {"oidc": {"issuerUrl": "https://issuer.example.com", "clientId": "c"}}
SOURCE = ROOT / "src" / "k8s" / "user_info.rs"


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def original_user_extra_keys() -> list[str]:
    """The extra keys the binary adds to an impersonated identity."""
    keys = re.findall(r'pub const ORIGINAL_\w+_EXTRA: &str = "([^"]+)";', SOURCE.read_text())
    assert len(keys) == 4, keys
    return keys


def allows(role: dict, verb: str, group: str, resource: str, name: str = "any-name") -> bool:
    """RBAC's rule matching for a resource request (no aggregation)."""
    for rule in role["rules"]:
        if verb not in rule["verbs"] and "*" not in rule["verbs"]:
            continue
        if group not in rule.get("apiGroups", []) and "*" not in rule.get("apiGroups", []):
            continue
        if resource not in rule.get("resources", []) and "*" not in rule.get("resources", []):
            continue
        names = rule.get("resourceNames") or []
        if names and name not in names:
            continue
        return True
    return False


def needs(values: dict) -> list[tuple]:
    """(verb, apiGroup, resource[, name]) the binary uses with these values.
    Users and groups narrowed with rbac.impersonate are needed by name."""
    authz = values.get("authz", {})
    extra_headers = values.get("extraImpersonationHeaders", {})
    impersonation = values.get("impersonation", {})
    narrowed = values.get("rbac", {}).get("impersonate", {})
    out: list[tuple] = [("impersonate", "authentication.k8s.io", "uids")]
    for kind in ("users", "groups"):
        out += [("impersonate", "", kind, n) for n in narrowed.get(kind) or ["any-name"]]
    keys = []
    if authz.get("credentialIdExtra", True):
        keys.append("authentication.kubernetes.io/credential-id")
    if extra_headers.get("clientIP"):
        keys.append("remote-client-ip")
    for kv in (extra_headers.get("headers") or "").split(","):
        if "=" in kv:
            keys.append(kv.split("=", 1)[0].strip().lower())
    if not authz.get("refuseSystemIdentities", True):
        out.append(("impersonate", "", "serviceaccounts"))
    if values.get("tokenPassthrough", {}).get("enabled"):
        out.append(("create", "authentication.k8s.io", "tokenreviews"))
    if impersonation.get("enabled"):
        out.append(("create", "authorization.k8s.io", "subjectaccessreviews"))
        keys += original_user_extra_keys() + list(impersonation.get("extraKeys") or [])
    out += [("impersonate", "authentication.k8s.io", f"userextras/{k}") for k in keys]
    return out


FEATURE_RIGHTS = {
    "tokenPassthrough": ("create", "authentication.k8s.io", "tokenreviews"),
    "impersonation": ("create", "authorization.k8s.io", "subjectaccessreviews"),
}

CASES = {
    "defaults": BASE,
    "passthrough": _merge(BASE, {"tokenPassthrough": {"enabled": True, "audiences": ["a"]}}),
    "impersonation": _merge(BASE, {"impersonation": {"enabled": True}}),
    "impersonation with asked extras": _merge(
        BASE, {"impersonation": {"enabled": True, "extraKeys": ["scopes", "example.com/team"]}}
    ),
    "impersonation of service accounts": _merge(
        BASE, {"impersonation": {"enabled": True}, "authz": {"refuseSystemIdentities": False}}
    ),
    "extras": _merge(
        BASE,
        {
            "authz": {"credentialIdExtra": False},
            "extraImpersonationHeaders": {"clientIP": True, "headers": "cluster=prod,Region=eu"},
        },
    ),
    "everything": load_values("everything"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cluster_role_grants_what_the_binary_needs(chart, case):
    values = CASES[case]
    role = render(chart, values).one("ClusterRole")
    missing = [n for n in needs(values) if not allows(role, *n)]
    assert missing == [], f"{case}: the binary needs {missing}"
    # A feature that is off grants nothing for it.
    for key, right in FEATURE_RIGHTS.items():
        if not values.get(key, {}).get("enabled"):
            assert not allows(role, *right), f"{case}: {right} granted with {key} off"
    if values.get("authz", {}).get("refuseSystemIdentities", True):
        assert not allows(role, "impersonate", "", "serviceaccounts")
    # Extra keys are named one by one, never by wildcard.
    extras = [r for rule in role["rules"] for r in rule["resources"] if r.startswith("userextras")]
    assert all(r.startswith("userextras/") and "*" not in r for r in extras), extras
    granted = {r.removeprefix("userextras/") for r in extras}
    needed = {n[2].removeprefix("userextras/") for n in needs(values) if n[2].startswith("userextras/")}
    assert granted == needed, f"{case}: extra keys granted beyond need: {granted - needed}"


def test_impersonation_arguments_reach_the_binary(chart):
    values = _merge(
        BASE,
        {"impersonation": {"enabled": True, "maxValues": 16, "reviewTimeout": "300ms", "cacheDenyTtl": "1s"}},
    )
    args = render(chart, values).container("authz")["args"]
    for flag in [
        "--allow-impersonation=true",
        "--impersonation-max-values=16",
        "--impersonation-review-timeout=300ms",
        "--impersonation-cache-allow-ttl=10s",
        "--impersonation-cache-deny-ttl=1s",
        "--impersonation-cache-max-entries=10000",
    ]:
        assert flag in args, (flag, args)
    assert "--allow-impersonation=false" in render(chart, BASE).container("authz")["args"]

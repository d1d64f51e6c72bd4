"""CEL claim mappings end to end: with an AuthenticationConfiguration whose
username, groups and extra are CEL expressions, `kubectl auth whoami`
through Envoy prints the mapped identity, the extra arrives as its own
`Impersonate-Extra-*` line, and the stand-in apiserver (which lets the proxy
impersonate only the extra keys the chart's ClusterRole names) accepts it.
Tokens the validation rules refuse get kubectl's 401."""

from __future__ import annotations

import json

import pytest
import yaml
from stack import Stack

CONFIG = {
    "apiVersion": "apiserver.config.k8s.io/v1",
    "kind": "AuthenticationConfiguration",
    "jwt": [
        {
            # url and certificateAuthority are the dev issuer's (the demo sets them).
            "issuer": {"url": "https://replaced.invalid", "audiences": ["kube-oidc-authz"]},
            "claimValidationRules": [
                {"expression": "claims.?email_verified.orValue(true) == true", "message": "email must be verified"},
            ],
            "claimMappings": {
                "username": {"expression": "'cel:' + claims.email.split('@')[0]"},
                "groups": {"expression": "claims.roles.map(r, 'cel:' + r.lowerAscii())"},
                "extra": [{"key": "example.com/tenant", "valueExpression": "claims.?tid.orValue('')"}],
            },
            "userValidationRules": [
                {"expression": "!user.groups.exists(g, g == 'cel:blocked')", "message": "blocked"},
            ],
        }
    ],
}


@pytest.fixture(scope="module")
def cel_stack(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("cel")
    config = d / "authentication-config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    s = Stack(d / "stack", audit=False, authentication_config=config)
    try:
        s.start()
        yield s
    finally:
        s.stop()


def whoami(stack: Stack, token: str, name: str):
    return stack.run_kubectl("auth", "whoami", "-o", "json", kubeconfig=stack.kubeconfig_for(token, name))


def test_cel_username_groups_and_extra_show_in_whoami(cel_stack):
    token = cel_stack.mint(email="bob@example.com", roles=["Developers", "Ops"], tid="t-42")
    r = whoami(cel_stack, token, "bob")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)["status"]["userInfo"]
    assert info["username"] == "cel:bob"
    assert info["groups"] == ["cel:developers", "cel:ops", "system:authenticated"]
    assert info["extra"]["example.com/tenant"] == ["t-42"]

    reviews = [
        rec for rec in cel_stack.recorded()
        if rec["path"] == "/apis/authentication.k8s.io/v1/selfsubjectreviews" and rec["status"] == 201
    ]
    lines = reviews[-1]["impersonate"]
    assert ["impersonate-extra-example.com%2ftenant", "t-42"] in lines, lines
    assert ["impersonate-user", "cel:bob"] in lines, lines


def test_an_empty_extra_is_left_out(cel_stack):
    token = cel_stack.mint(email="carol@example.com", roles=["ops"])
    r = whoami(cel_stack, token, "carol")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)["status"]["userInfo"]
    assert info["username"] == "cel:carol"
    assert "example.com/tenant" not in info.get("extra", {})


@pytest.mark.parametrize(
    "claims",
    [
        {"email": "dave@example.com", "email_verified": False, "roles": ["ops"]},
        {"email": "erin@example.com", "roles": ["blocked"]},
        {"email": "frank@example.com", "roles": "ops"},
    ],
    ids=["claim-rule", "user-rule", "groups-not-a-list"],
)
def test_tokens_the_rules_refuse_get_401(cel_stack, claims):
    r = whoami(cel_stack, cel_stack.mint(**claims), claims["email"].split("@")[0])
    assert r.returncode != 0
    assert "You must be logged in to the server" in r.stderr, r.stderr


def test_the_apiserver_refuses_an_extra_key_the_proxy_may_not_impersonate(cel_stack):
    """The demo grants the proxy exactly the extra keys of the configuration,
    as the chart's ClusterRole does; with the tenant key taken out of that
    grant the stand-in refuses the request, so the grant is what lets the
    CEL extra through. Runs last: it restarts the apiserver with its own
    argv afterwards."""
    from stack import Proc, wait_until

    old = cel_stack.procs["apiserver"]
    grant = "--proxy-userextra=example.com/tenant"
    assert grant in old.argv, old.argv
    narrowed = [a for a in old.argv if a != grant]
    old.stop()
    p = Proc("apiserver", narrowed, old.log, env=cel_stack.env).start()
    cel_stack.procs["apiserver"] = p
    try:
        wait_until("apiserver restarted", lambda: cel_stack._ready("apiserver"), proc=p, log=p.log)
        token = cel_stack.mint(email="gina@example.com", roles=["ops"], tid="t-7")
        r = whoami(cel_stack, token, "gina")
        # kubectl words a 403 on selfsubjectreviews as its own message.
        assert r.returncode != 0 and "do not have permission" in r.stderr, r.stderr
        refused = [rec for rec in cel_stack.recorded() if rec["path"].endswith("/selfsubjectreviews")]
        assert refused and refused[-1]["status"] == 403, refused
        assert ["impersonate-extra-example.com%2ftenant", "t-7"] in refused[-1]["impersonate"]
        # Without a tenant there is no extra line, and nothing to refuse.
        r = whoami(cel_stack, cel_stack.mint(email="hal@example.com", roles=["ops"]), "hal")
        assert r.returncode == 0, r.stderr
    finally:
        p.stop()
        restored = Proc("apiserver", old.argv, old.log, env=cel_stack.env).start()
        cel_stack.procs["apiserver"] = restored

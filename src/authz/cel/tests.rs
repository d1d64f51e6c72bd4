use serde_json::{Value as Json, json};

use super::*;

fn compiler() -> Compiler {
    Compiler::new().unwrap()
}

fn claims(v: Json) -> Map<String, Json> {
    v.as_object().unwrap().clone()
}

/// Evaluates one claims expression and returns its value.
fn eval(source: &str, c: Json) -> Result<cel::Value, String> {
    let compiler = compiler();
    // The semantic tables look at values of any type: no result check.
    let program = compiler.env.compile(source).map_err(|e| e.to_string())?;
    let problems = check::undeclared(program.expression(), "claims");
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let exprs = Expressions::new(&compiler);
    let scope = exprs.bind_claims(&claims(c));
    program.execute(&scope.ctx).map_err(|e| e.to_string())
}

fn s(x: &str) -> cel::Value {
    cel::Value::from(x)
}

fn list(xs: &[&str]) -> cel::Value {
    cel::Value::List(Arc::new(xs.iter().map(|x| s(x)).collect()))
}

/// A whole issuer's expressions, as the config loader builds them.
#[derive(Clone, Copy)]
struct Config<'a> {
    username: Option<&'a str>,
    groups: Option<&'a str>,
    uid: Option<&'a str>,
    extra: &'a [(&'a str, &'a str)],
    claim_rules: &'a [(&'a str, &'a str)],
    user_rules: &'a [(&'a str, &'a str)],
}

const NONE: Config<'static> = Config {
    username: None,
    groups: None,
    uid: None,
    extra: &[],
    claim_rules: &[],
    user_rules: &[],
};

fn build(cfg: &Config<'_>) -> Expressions {
    let c = compiler();
    let claims = |src: &str, want| c.compile(src, Variable::Claims, want).unwrap();
    let rule = |(src, msg): &(&str, &str), var| Rule {
        expression: c.compile(src, var, Want::Bool).unwrap(),
        message: (*msg).to_owned(),
    };
    let mut e = Expressions::new(&c);
    e.username = cfg.username.map(|s| claims(s, Want::String));
    e.groups = cfg.groups.map(|s| claims(s, Want::StringOrList));
    e.uid = cfg.uid.map(|s| claims(s, Want::String));
    e.extra = cfg
        .extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), claims(v, Want::StringOrList)))
        .collect();
    e.claim_rules = cfg
        .claim_rules
        .iter()
        .map(|r| rule(r, Variable::Claims))
        .collect();
    e.user_rules = cfg
        .user_rules
        .iter()
        .map(|r| rule(r, Variable::User))
        .collect();
    e
}

/// Runs an issuer's expressions in the apiserver's order: mappings, claim
/// validation rules, user validation rules.
fn authenticate(e: &Expressions, c: Json) -> Result<Mapped, Failure> {
    let scope = e.bind_claims(&claims(c));
    let mapped = e.map(&scope)?;
    e.validate_claims(&scope)?;
    let groups = mapped.groups.clone().unwrap_or_default();
    e.validate_user(
        mapped.username.as_deref().unwrap_or(""),
        mapped.uid.clone().flatten().as_deref(),
        &groups,
        &mapped.extra,
    )?;
    Ok(mapped)
}

fn rule_failed(message: &str) -> Result<Mapped, Failure> {
    Err(Failure::Rule {
        message: message.to_owned(),
    })
}

/// The example configurations and tokens of the Kubernetes documentation
/// (Authenticating, "Using CEL expressions" and the failing variants), and
/// the identity or error the apiserver gives for each.
#[test]
fn kubernetes_documentation_examples() {
    // The documentation's token.
    let token = json!({
        "aud": "kubernetes", "exp": 1703232949, "iat": 1701107233,
        "iss": "https://example.com",
        "jti": "7c337942807e73caa2c30c868ac0ce910bce02ddcbfebe8c23b8b5f27ad62873",
        "nbf": 1701107233, "roles": "user,admin", "sub": "auth",
        "tenant": "72f988bf-86f1-41af-91ab-2d7cd011db4a", "username": "foo"
    });
    let mapping = Config {
        username: Some(r#"claims.username + ":external-user""#),
        groups: Some(r#"claims.roles.split(",")"#),
        uid: Some("claims.sub"),
        extra: &[("example.com/tenant", "claims.tenant")],
        user_rules: &[(
            "!user.username.startsWith('system:')",
            "username cannot used reserved system: prefix",
        )],
        ..NONE
    };
    let want_identity = Ok(Mapped {
        username: Some("foo:external-user".into()),
        groups: Some(vec!["user".into(), "admin".into()]),
        uid: Some(Some("auth".into())),
        extra: vec![(
            "example.com/tenant".into(),
            vec!["72f988bf-86f1-41af-91ab-2d7cd011db4a".into()],
        )],
    });
    let lifetime = [(
        "claims.exp - claims.nbf <= 86400",
        "total token lifetime must not exceed 24 hours",
    )];
    let hd = [(
        r#"claims.hd == "example.com""#,
        "the hd claim must be set to example.com",
    )];
    let mut with_hd = token.clone();
    with_hd["hd"] = json!("example.com");
    let system_user = Config {
        username: Some(r#""system:" + claims.sub"#),
        ..mapping
    };
    let table: Vec<(&str, Config<'_>, Json, Result<Mapped, Failure>)> = vec![
        (
            "mapped identity",
            mapping,
            token.clone(),
            want_identity.clone(),
        ),
        (
            "token lifetime over 24 hours fails claim validation",
            Config {
                claim_rules: &lifetime,
                ..mapping
            },
            token.clone(),
            rule_failed("total token lifetime must not exceed 24 hours"),
        ),
        (
            "hd rule holds",
            Config {
                claim_rules: &hd,
                ..mapping
            },
            with_hd,
            want_identity,
        ),
        (
            "hd claim missing: the rule errors, the token fails",
            Config {
                claim_rules: &hd,
                ..mapping
            },
            token.clone(),
            rule_failed("the hd claim must be set to example.com"),
        ),
        (
            "system: username fails user validation",
            system_user,
            token.clone(),
            rule_failed("username cannot used reserved system: prefix"),
        ),
    ];
    for (name, cfg, c, want) in table {
        assert_eq!(authenticate(&build(&cfg), c), want, "{name}");
    }
}

/// The expressions users reach for most, with the claims they describe.
#[test]
fn common_expressions() {
    let c = json!({
        "email": "alice@example.com", "groups": ["k8s-dev", "mail", "k8s-ops"],
        "tid": "t1", "sub": "u1"
    });
    let table: Vec<(&str, cel::Value)> = vec![
        ("claims.email.split('@')[0]", s("alice")),
        (
            "claims.?email_verified.orValue(true)",
            cel::Value::Bool(true),
        ),
        ("claims.?tid.orValue('none')", s("t1")),
        ("claims.?missing.hasValue()", cel::Value::Bool(false)),
        (
            "claims.groups.filter(g, g.startsWith('k8s-'))",
            list(&["k8s-dev", "k8s-ops"]),
        ),
        (
            "claims.groups.map(g, 'oidc:' + g)",
            list(&["oidc:k8s-dev", "oidc:mail", "oidc:k8s-ops"]),
        ),
        ("has(claims.tid)", cel::Value::Bool(true)),
        ("has(claims.oid)", cel::Value::Bool(false)),
        ("claims.groups.all(g, g.size() > 3)", cel::Value::Bool(true)),
        (
            "claims.groups.exists(g, g == 'mail')",
            cel::Value::Bool(true),
        ),
        (
            "claims.groups.exists_one(g, g.startsWith('k8s-'))",
            cel::Value::Bool(false),
        ),
        ("'mail' in claims.groups", cel::Value::Bool(true)),
        (
            "claims.email.matches('^[a-z]+@example[.]com$')",
            cel::Value::Bool(true),
        ),
        // RE2 `matches` is unanchored, as in cel-go.
        ("claims.email.matches('example')", cel::Value::Bool(true)),
        ("has(claims.tid) ? claims.tid : null", s("t1")),
    ];
    for (src, want) in table {
        assert_eq!(eval(src, c.clone()), Ok(want), "{src}");
    }
}

/// cel-go's strings extension (version 2, as the apiserver loads it):
/// code-point indices, ASCII-only case mapping, Unicode trimming.
#[test]
fn strings_extension_semantics() {
    let ok: Vec<(&str, cel::Value)> = vec![
        ("'a,b,,c'.split(',')", list(&["a", "b", "", "c"])),
        ("'a,b,c'.split(',', 2)", list(&["a", "b,c"])),
        ("'a,b,c'.split(',', 0)", list(&[])),
        ("'abc'.split('')", list(&["a", "b", "c"])),
        ("'TacoCAT'.lowerAscii()", s("tacocat")),
        ("'ÀbC'.lowerAscii()", s("Àbc")),
        ("'TacoCat'.upperAscii()", s("TACOCAT")),
        ("'àb'.upperAscii()", s("àB")),
        ("'hello'.replace('l', 'L')", s("heLLo")),
        ("'hello'.replace('l', 'L', 1)", s("heLlo")),
        ("'hello'.replace('', '-')", s("-h-e-l-l-o-")),
        ("' \\t x y \\n'.trim()", s("x y")),
        ("'\\u00a0x\\u2003'.trim()", s("x")),
        ("['a', 'b'].join('-')", s("a-b")),
        ("['a', 'b'].join()", s("ab")),
        ("[].join(',')", s("")),
        ("'hello'.indexOf('l')", cel::Value::Int(2)),
        ("'hello'.indexOf('z')", cel::Value::Int(-1)),
        ("'héllo'.indexOf('l')", cel::Value::Int(2)),
        ("'hello'.indexOf('l', 3)", cel::Value::Int(3)),
        ("'hello'.lastIndexOf('l')", cel::Value::Int(3)),
        ("'hello'.substring(1, 3)", s("el")),
        ("'héllo'.substring(1)", s("éllo")),
        ("'hello'.substring(5)", s("")),
        ("'abc'.charAt(1)", s("b")),
        ("'abc'.charAt(3)", s("")),
    ];
    for (src, want) in ok {
        assert_eq!(eval(src, json!({})), Ok(want), "{src}");
    }
    for src in [
        "'hello'.substring(6)",
        "'hello'.substring(3, 1)",
        "'abc'.charAt(4)",
        "'hello'.indexOf('l', 9)",
        "[1, 2].join(',')",
    ] {
        assert!(eval(src, json!({})).is_err(), "{src} must be an error");
    }
}

#[test]
fn optional_syntax() {
    let c = json!({"a": {"b": "x"}, "list": ["p", "q"]});
    let table: Vec<(&str, cel::Value)> = vec![
        ("claims.?a.?b.orValue('none')", s("x")),
        ("claims.?a.?c.orValue('none')", s("none")),
        ("claims.?z.?c.orValue('none')", s("none")),
        ("claims.list[?5].orValue('none')", s("none")),
        ("claims.list[?1].orValue('none')", s("q")),
        ("claims.?a.b.orValue('none')", s("x")),
        ("optional.of('v').value()", s("v")),
        ("optional.none().or(optional.of('w')).value()", s("w")),
        ("[?claims.?z, ?claims.?a.?b]", list(&["x"])),
    ];
    for (src, want) in table {
        assert_eq!(eval(src, c.clone()), Ok(want), "{src}");
    }
}

#[test]
fn mapping_results_follow_the_apiserver_rules() {
    let c = json!({"sub": "u1", "n": 5, "empty": "", "list": ["a", "", "b"], "mixed": ["a", 1], "obj": {"k": "v"}});
    type Row<'a> = (&'a str, Config<'a>, Result<Mapped, Failure>);
    let mapping = |field: &str| {
        Err(Failure::Mapping {
            field: field.to_owned(),
        })
    };
    let table: Vec<Row<'_>> = vec![
        (
            "username int",
            Config {
                username: Some("claims.n"),
                ..NONE
            },
            mapping("username"),
        ),
        (
            "username empty",
            Config {
                username: Some("claims.empty"),
                ..NONE
            },
            mapping("username"),
        ),
        (
            "username missing claim",
            Config {
                username: Some("claims.nope"),
                ..NONE
            },
            mapping("username"),
        ),
        (
            "username null",
            Config {
                username: Some("claims.?nope.orValue(null)"),
                ..NONE
            },
            mapping("username"),
        ),
        (
            "groups filter out empty strings",
            Config {
                groups: Some("claims.list"),
                ..NONE
            },
            Ok(Mapped {
                groups: Some(vec!["a".into(), "b".into()]),
                ..Mapped::default()
            }),
        ),
        (
            "groups from one string",
            Config {
                groups: Some("claims.sub"),
                ..NONE
            },
            Ok(Mapped {
                groups: Some(vec!["u1".into()]),
                ..Mapped::default()
            }),
        ),
        (
            "groups null is none",
            Config {
                groups: Some("claims.?g.orValue(null)"),
                ..NONE
            },
            Ok(Mapped {
                groups: Some(vec![]),
                ..Mapped::default()
            }),
        ),
        (
            "groups with a number",
            Config {
                groups: Some("claims.mixed"),
                ..NONE
            },
            mapping("groups"),
        ),
        (
            "groups as a map",
            Config {
                groups: Some("claims.obj"),
                ..NONE
            },
            mapping("groups"),
        ),
        (
            "uid int",
            Config {
                uid: Some("claims.n"),
                ..NONE
            },
            mapping("uid"),
        ),
        (
            "uid empty is no uid",
            Config {
                uid: Some("claims.empty"),
                ..NONE
            },
            Ok(Mapped {
                uid: Some(None),
                ..Mapped::default()
            }),
        ),
        (
            "extra empty is left out",
            Config {
                extra: &[
                    ("example.com/a", "claims.empty"),
                    ("example.com/b", "claims.list"),
                ],
                ..NONE
            },
            Ok(Mapped {
                extra: vec![("example.com/b".into(), vec!["a".into(), "b".into()])],
                ..Mapped::default()
            }),
        ),
        (
            "extra error",
            Config {
                extra: &[("example.com/a", "claims.obj.missing")],
                ..NONE
            },
            mapping("example.com/a"),
        ),
        (
            "claim rule not a bool",
            Config {
                claim_rules: &[("claims.?sub.orValue(false)", "")],
                ..NONE
            },
            rule_failed("claims.?sub.orValue(false)"),
        ),
        (
            "claim rule error",
            Config {
                claim_rules: &[("claims.n / 0 == 1", "no division")],
                ..NONE
            },
            rule_failed("no division"),
        ),
        (
            "user rule sees empty uid and groups",
            Config {
                username: Some("claims.sub"),
                user_rules: &[(
                    "user.uid == '' && size(user.groups) == 0 && size(user.extra) == 0",
                    "m",
                )],
                ..NONE
            },
            Ok(Mapped {
                username: Some("u1".into()),
                ..Mapped::default()
            }),
        ),
        (
            "user rule sees extra",
            Config {
                username: Some("claims.sub"),
                extra: &[("example.com/a", "claims.sub")],
                user_rules: &[("user.extra['example.com/a'] == ['u1']", "m")],
                ..NONE
            },
            Ok(Mapped {
                username: Some("u1".into()),
                extra: vec![("example.com/a".into(), vec!["u1".into()])],
                ..Mapped::default()
            }),
        ),
    ];
    for (name, cfg, want) in table {
        assert_eq!(authenticate(&build(&cfg), c.clone()), want, "{name}");
    }
}

#[test]
fn compile_errors_are_refused_at_start_up() {
    let c = compiler();
    let table: Vec<(&str, Variable, Want, &str)> = vec![
        (
            "claims.sub +",
            Variable::Claims,
            Want::String,
            "compilation failed",
        ),
        (
            "claims.sub.foo()",
            Variable::Claims,
            Want::String,
            "undeclared reference to 'foo'",
        ),
        (
            "url(claims.iss).getHost()",
            Variable::Claims,
            Want::String,
            "undeclared reference to 'url'",
        ),
        (
            "sets.contains(claims.a, ['x'])",
            Variable::Claims,
            Want::Bool,
            "undeclared reference to 'sets.contains'",
        ),
        (
            "'x'.reverse()",
            Variable::Claims,
            Want::String,
            "undeclared reference to 'reverse'",
        ),
        // Two-variable comprehensions are no macro of the crate.
        (
            "claims.m.all(k, v, v == 'x')",
            Variable::Claims,
            Want::Bool,
            "undeclared reference to 'all'",
        ),
        (
            "timestamp(claims.iat) < timestamp('2030-01-01T00:00:00Z')",
            Variable::Claims,
            Want::Bool,
            "undeclared reference to 'timestamp'",
        ),
        (
            "cidr(claims.net).containsIP(claims.ip)",
            Variable::Claims,
            Want::Bool,
            "undeclared reference to 'cidr'",
        ),
        (
            "token.sub",
            Variable::Claims,
            Want::String,
            "undeclared reference to 'token'",
        ),
        (
            "user.username",
            Variable::Claims,
            Want::String,
            "undeclared reference to 'user'",
        ),
        (
            "claims.sub == 'x'",
            Variable::User,
            Want::Bool,
            "undeclared reference to 'claims'",
        ),
        (
            "user.name == 'x'",
            Variable::User,
            Want::Bool,
            "undefined field 'name'",
        ),
        (
            "has(user.name)",
            Variable::User,
            Want::Bool,
            "undefined field 'name'",
        ),
        (
            "42",
            Variable::Claims,
            Want::String,
            "must evaluate to string",
        ),
        (
            "claims.a == 'b'",
            Variable::Claims,
            Want::StringOrList,
            "must evaluate to one of",
        ),
        (
            "'yes'",
            Variable::Claims,
            Want::Bool,
            "must evaluate to bool",
        ),
        ("  ", Variable::Claims, Want::Bool, "Required value"),
        (
            "claims.a.filter(x, claims.b.exists(y, y == x))",
            Variable::Claims,
            Want::StringOrList,
            "exceeds the limit",
        ),
        (
            "claims.a.replace('', claims.a).replace('', claims.a)",
            Variable::Claims,
            Want::String,
            "exceeds the limit",
        ),
    ];
    for (src, var, want, err) in table {
        let got = c.compile(src, var, want).map(|_| ()).unwrap_err();
        assert!(got.contains(err), "{src}: {got}");
    }
    // The comprehension variables are declared inside their macro.
    for src in [
        "claims.groups.filter(g, g.startsWith('k8s-'))",
        "claims.groups.map(g, g.lowerAscii().replace('_', '-'))",
        "claims.roles.split(',').map(r, 'role:' + r)",
        "claims.groups.join(',').split(',')",
    ] {
        assert!(
            c.compile(src, Variable::Claims, Want::StringOrList).is_ok(),
            "{src}"
        );
    }
}

#[test]
fn email_verified_detection_follows_the_apiserver() {
    let c = compiler();
    let sel = |src: &str, field: &str| {
        c.compile(src, Variable::Claims, Want::StringOrList)
            .unwrap()
            .selects_claim(field)
    };
    assert!(sel("claims.email", "email"));
    assert!(sel("claims.?email.orValue('')", "email"));
    assert!(sel(
        "claims.email_verified ? claims.email : ''",
        "email_verified"
    ));
    assert!(sel("[claims.a].map(x, claims.email)", "email"));
    assert!(!sel("claims.email_", "email"));
    assert!(!sel("claims['email']", "email"));
}

/// The Kubernetes IP library, with Go's `netip` semantics.
#[test]
fn ip_library() {
    let b = cel::Value::Bool;
    let ok: Vec<(&str, cel::Value)> = vec![
        ("isIP('192.168.0.1')", b(true)),
        ("isIP('2001:db8::1')", b(true)),
        ("isIP('::ffff:1.2.3.4')", b(false)),
        ("isIP('fe80::1%eth0')", b(false)),
        ("isIP('01.2.3.4')", b(false)),
        ("isIP('1.2.3')", b(false)),
        ("isIP('')", b(false)),
        ("ip('192.168.0.1').family()", cel::Value::Int(4)),
        ("ip('::1').family()", cel::Value::Int(6)),
        ("ip('127.0.0.1').isLoopback()", b(true)),
        ("ip('::1').isLoopback()", b(true)),
        ("ip('0.0.0.0').isUnspecified()", b(true)),
        ("ip('::').isUnspecified()", b(true)),
        ("ip('169.254.1.1').isLinkLocalUnicast()", b(true)),
        ("ip('fe80::1').isLinkLocalUnicast()", b(true)),
        ("ip('febf::1').isLinkLocalUnicast()", b(true)),
        ("ip('fec0::1').isLinkLocalUnicast()", b(false)),
        ("ip('224.0.0.1').isLinkLocalMulticast()", b(true)),
        ("ip('224.0.1.1').isLinkLocalMulticast()", b(false)),
        ("ip('ff02::2').isLinkLocalMulticast()", b(true)),
        ("ip('ff12::2').isLinkLocalMulticast()", b(true)),
        ("ip('10.0.0.1').isGlobalUnicast()", b(true)),
        ("ip('2001:db8::1').isGlobalUnicast()", b(true)),
        ("ip('255.255.255.255').isGlobalUnicast()", b(false)),
        ("ip('224.0.0.1').isGlobalUnicast()", b(false)),
        ("ip('127.0.0.1').isGlobalUnicast()", b(false)),
        ("ip.isCanonical('2001:db8::1')", b(true)),
        ("ip.isCanonical('2001:DB8::1')", b(false)),
        ("ip.isCanonical('2001:db8:0:0:0:0:0:1')", b(false)),
        ("ip.isCanonical('10.0.0.1')", b(true)),
        ("ip('2001:db8::1') == ip('2001:DB8:0::1')", b(true)),
        ("ip('10.0.0.1') == ip('10.0.0.2')", b(false)),
        ("string(ip('2001:DB8:0::1'))", s("2001:db8::1")),
        ("ip(claims.addr).isLoopback()", b(true)),
    ];
    for (src, want) in ok {
        assert_eq!(eval(src, json!({"addr": "::1"})), Ok(want), "{src}");
    }
    for src in ["ip('::ffff:1.2.3.4')", "ip('x')", "ip.isCanonical('x')"] {
        assert!(eval(src, json!({})).is_err(), "{src} must be an error");
    }
    let c = compiler();
    assert!(
        c.compile("ip(claims.addr).isLoopback()", Variable::Claims, Want::Bool)
            .is_ok()
    );
}

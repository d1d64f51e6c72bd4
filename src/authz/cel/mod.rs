//! CEL in the `AuthenticationConfiguration` `jwt` section, as the
//! apiserver's JWT authenticator evaluates it: `claimMappings` expressions
//! (username, groups, uid, extra), `claimValidationRules` over `claims`,
//! and `userValidationRules` over the mapped `user`.
//!
//! Every expression is compiled at start-up ([`Compiler`]); a problem is
//! returned as text for the config loader to prefix with the field path.
//! [`Expressions`] holds one issuer's compiled set and evaluates it on a
//! cache miss; a cached identity never runs an expression again.
//!
//! [`check`] stands in for the type checker the crate lacks, [`cost`]
//! bounds what an expression may cost, [`ip`] adds the Kubernetes IP
//! library the crate lacks, [`value`] converts between JSON and CEL with
//! the apiserver's rules.

mod check;
mod cost;
mod ip;
mod value;

use std::sync::Arc;

use cel::{Context, Env, Program};
use serde_json::{Map, Value as Json};

pub use cost::{COST_LIMIT, INPUT_BOUND};
use value::NotA;

/// What a field's expression must evaluate to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// `username`, `uid`.
    String,
    /// `groups`, `extra[].valueExpression`.
    StringOrList,
    /// Validation rules.
    Bool,
}

/// Which variable an expression sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variable {
    /// The token payload, `map(string, dyn)`.
    Claims,
    /// The mapped user, `kubernetes.UserInfo`.
    User,
}

impl Variable {
    fn name(self) -> &'static str {
        match self {
            Variable::Claims => "claims",
            Variable::User => "user",
        }
    }
}

/// One compiled expression and its source, which error messages quote.
pub struct Compiled {
    source: String,
    program: Program,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Compiled {
    /// Whether the expression selects `claims.<field>`, as the apiserver's
    /// `email_verified` rule tests it.
    pub fn selects_claim(&self, field: &str) -> bool {
        check::selects_claim(self.program.expression(), field)
    }
}

/// The CEL environment the apiserver gives authentication expressions,
/// as far as the `cel` crate provides it (README, "CEL").
pub struct Compiler {
    env: Arc<Env>,
}

impl Compiler {
    pub fn new() -> Result<Compiler, String> {
        let mut env = Env::stdlib();
        env.add_extension(cel::extensions::strings)
            .and_then(|()| env.add_extension(ip::extension))
            .map_err(|e| format!("CEL environment: {e}"))?;
        // cel-go keeps the last entry of a map literal that repeats a key.
        env.set_error_on_duplicate_map_keys(false);
        Ok(Compiler { env: Arc::new(env) })
    }

    /// Compiles `source` for `variable`, refusing what the apiserver's
    /// compiler refuses (syntax, undeclared names, a result of the wrong
    /// type) and what would cost more than [`COST_LIMIT`].
    pub fn compile(
        &self,
        source: &str,
        variable: Variable,
        want: Want,
    ) -> Result<Compiled, String> {
        if source.trim().is_empty() {
            return Err("Required value".to_owned());
        }
        let program = self
            .env
            .compile(source)
            .map_err(|e| format!("compilation failed: {}", one_line(&e.to_string())))?;
        let problems = check::undeclared(program.expression(), variable.name());
        if !problems.is_empty() {
            return Err(format!("compilation failed: {}", problems.join("; ")));
        }
        if let Some(kind) = check::result_kind(program.expression()) {
            let ok = match want {
                Want::String => kind == check::Kind::String,
                Want::StringOrList => matches!(kind, check::Kind::String | check::Kind::List),
                Want::Bool => kind == check::Kind::Bool,
            };
            if !ok {
                return Err(match want {
                    Want::String => "must evaluate to string".to_owned(),
                    Want::StringOrList => {
                        "must evaluate to one of [string list(string)]".to_owned()
                    }
                    Want::Bool => "must evaluate to bool".to_owned(),
                });
            }
        }
        let cost = cost::estimate(program.expression());
        if cost > COST_LIMIT {
            return Err(format!(
                "estimated cost {cost:.0} exceeds the limit of {COST_LIMIT:.0} for a token of at most {} bytes (see README, CEL)",
                crate::authz::verify::MAX_TOKEN_BYTES
            ));
        }
        Ok(Compiled {
            source: source.to_owned(),
            program,
        })
    }

    /// The environment, shared by every issuer's [`Expressions`].
    pub fn env(&self) -> Arc<Env> {
        Arc::clone(&self.env)
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A validation rule: the expression and the message the apiserver reports
/// when it is false.
#[derive(Debug)]
pub struct Rule {
    pub expression: Compiled,
    pub message: String,
}

/// One issuer's compiled expressions. Each is optional; a claim mapping
/// the config gives as `claim` is not here.
pub struct Expressions {
    env: Arc<Env>,
    pub username: Option<Compiled>,
    pub groups: Option<Compiled>,
    pub uid: Option<Compiled>,
    /// `(key, valueExpression)`, keys validated and unique.
    pub extra: Vec<(String, Compiled)>,
    pub claim_rules: Vec<Rule>,
    pub user_rules: Vec<Rule>,
}

impl std::fmt::Debug for Expressions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expressions")
            .field("username", &self.username)
            .field("groups", &self.groups)
            .field("uid", &self.uid)
            .field("extra", &self.extra)
            .field("claim_rules", &self.claim_rules)
            .field("user_rules", &self.user_rules)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Compiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiler").finish_non_exhaustive()
    }
}

/// Why an evaluation fails the token. The expression's own error text is
/// never carried: it may quote claim values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A mapping expression errored, returned the wrong type, or gave an
    /// empty username. `field` is `username`, `groups`, `uid` or the extra
    /// key.
    Mapping { field: String },
    /// A validation rule errored, was not a boolean, or was false.
    Rule { message: String },
}

/// The claims bound as `claims`, ready to evaluate expressions against.
pub struct ClaimsScope {
    ctx: Context<'static, 'static>,
}

/// The identity fields an issuer's expressions produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapped {
    pub username: Option<String>,
    pub groups: Option<Vec<String>>,
    /// `Some(None)` when the uid expression gave `""`.
    pub uid: Option<Option<String>>,
    pub extra: Vec<(String, Vec<String>)>,
}

impl Expressions {
    /// An empty set in `compiler`'s environment.
    pub fn new(compiler: &Compiler) -> Expressions {
        Expressions {
            env: compiler.env(),
            username: None,
            groups: None,
            uid: None,
            extra: Vec::new(),
            claim_rules: Vec::new(),
            user_rules: Vec::new(),
        }
    }

    /// Whether any expression reads `claims`.
    pub fn reads_claims(&self) -> bool {
        self.username.is_some()
            || self.groups.is_some()
            || self.uid.is_some()
            || !self.extra.is_empty()
            || !self.claim_rules.is_empty()
    }

    /// Binds the payload once for every expression of this issuer.
    pub fn bind_claims(&self, claims: &Map<String, Json>) -> ClaimsScope {
        let mut ctx = Context::with_env(Arc::clone(&self.env));
        ctx.add_variable_from_value("claims", value::object(claims));
        ClaimsScope { ctx }
    }

    /// Runs the claim validation rules, in order; the first false one fails.
    pub fn validate_claims(&self, scope: &ClaimsScope) -> Result<(), Failure> {
        for rule in &self.claim_rules {
            run_rule(rule, &scope.ctx)?;
        }
        Ok(())
    }

    /// Evaluates the mapping expressions, with the apiserver's result rules.
    pub fn map(&self, scope: &ClaimsScope) -> Result<Mapped, Failure> {
        let ctx = &scope.ctx;
        let fail = |field: &str| Failure::Mapping {
            field: field.to_owned(),
        };
        let mut out = Mapped::default();
        if let Some(e) = &self.username {
            let user = eval_string(e, ctx).map_err(|_| fail("username"))?;
            // An expression may not produce an empty username.
            if user.is_empty() {
                return Err(fail("username"));
            }
            out.username = Some(user);
        }
        if let Some(e) = &self.groups {
            out.groups = Some(eval_list(e, ctx).map_err(|_| fail("groups"))?);
        }
        if let Some(e) = &self.uid {
            let uid = eval_string(e, ctx).map_err(|_| fail("uid"))?;
            out.uid = Some(Some(uid).filter(|u| !u.is_empty()));
        }
        for (key, e) in &self.extra {
            let values = eval_list(e, ctx).map_err(|_| fail(key))?;
            if !values.is_empty() {
                out.extra.push((key.clone(), values));
            }
        }
        Ok(out)
    }

    /// Runs the user validation rules against the mapped identity.
    pub fn validate_user(
        &self,
        username: &str,
        uid: Option<&str>,
        groups: &[String],
        extra: &[(String, Vec<String>)],
    ) -> Result<(), Failure> {
        if self.user_rules.is_empty() {
            return Ok(());
        }
        let mut ctx = Context::with_env(Arc::clone(&self.env));
        ctx.add_variable_from_value("user", value::user(username, uid, groups, extra));
        for rule in &self.user_rules {
            run_rule(rule, &ctx)?;
        }
        Ok(())
    }
}

enum EvalError {
    Execution,
    Type,
}

impl From<NotA> for EvalError {
    fn from(_: NotA) -> Self {
        EvalError::Type
    }
}

fn execute(e: &Compiled, ctx: &Context<'_, '_>) -> Result<cel::Value, EvalError> {
    e.program.execute(ctx).map_err(|_| EvalError::Execution)
}

fn eval_string(e: &Compiled, ctx: &Context<'_, '_>) -> Result<String, EvalError> {
    Ok(value::to_string(execute(e, ctx)?)?)
}

fn eval_list(e: &Compiled, ctx: &Context<'_, '_>) -> Result<Vec<String>, EvalError> {
    Ok(value::to_string_list(execute(e, ctx)?)?)
}

fn run_rule(rule: &Rule, ctx: &Context<'_, '_>) -> Result<(), Failure> {
    let failed = || Failure::Rule {
        message: if rule.message.is_empty() {
            rule.expression.source.clone()
        } else {
            rule.message.clone()
        },
    };
    match execute(&rule.expression, ctx).map(|v| value::to_bool(&v)) {
        Ok(Ok(true)) => Ok(()),
        _ => Err(failed()),
    }
}

#[cfg(test)]
mod tests;

//! What the apiserver's CEL type checker refuses at start-up and the `cel`
//! crate, which has no checker, would only notice while evaluating: names
//! that are not declared, fields the `user` object does not have, and
//! results of a type the field cannot take. Also the structural test the
//! apiserver runs on the username expression (`claims.email` needs
//! `claims.email_verified` somewhere).

use std::collections::HashSet;

use cel::common::ast::{EntryExpr, Expr, LiteralValue};
use cel::parser::Expression;

use super::value::USER_FIELDS;

/// Functions of the environment the expressions run in: the CEL standard
/// library, the optional library, cel-go's strings extension at the
/// version the apiserver uses (2), and the Kubernetes IP library. Anything else is refused at start-up
/// rather than failing every token at run time.
const FUNCTIONS: &[&str] = &[
    // Standard library.
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "dyn",
    "type",
    // Optional values.
    "optional.of",
    "optional.none",
    "optional.ofNonZeroValue",
    "hasValue",
    "value",
    "or",
    "orValue",
    // Strings extension, version 2.
    "charAt",
    "indexOf",
    "lastIndexOf",
    "join",
    "lowerAscii",
    "upperAscii",
    "replace",
    "split",
    "substring",
    "trim",
    "format",
    "strings.quote",
    // The Kubernetes IP library.
    "ip",
    "isIP",
    "ip.isCanonical",
    "family",
    "isUnspecified",
    "isLoopback",
    "isLinkLocalMulticast",
    "isLinkLocalUnicast",
    "isGlobalUnicast",
];

/// Operators are calls too; their names are never spelled by a user.
fn is_operator(name: &str) -> bool {
    name.starts_with(['_', '@', '!', '-'])
}

/// The statically known kind of an expression's result, when the
/// expression's shape alone tells it; `None` is `dyn` (a claim, a call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Null,
    List,
    Map,
}

/// The result kind, where the root of the expression fixes it.
pub fn result_kind(e: &Expression) -> Option<Kind> {
    match &e.expr {
        Expr::Literal(l) => Some(match l {
            LiteralValue::Boolean(_) => Kind::Bool,
            LiteralValue::Bytes(_) => Kind::Bytes,
            LiteralValue::Double(_) => Kind::Double,
            LiteralValue::Int(_) => Kind::Int,
            LiteralValue::Null => Kind::Null,
            LiteralValue::String(_) => Kind::String,
            LiteralValue::UInt(_) => Kind::Uint,
        }),
        Expr::List(_) => Some(Kind::List),
        Expr::Map(_) => Some(Kind::Map),
        Expr::Call(c) => match c.func_name.as_str() {
            "_==_" | "_!=_" | "_<_" | "_<=_" | "_>_" | "_>=_" | "_&&_" | "_||_" | "!_" | "@in"
            | "startsWith" | "endsWith" | "contains" | "matches" | "hasValue" => Some(Kind::Bool),
            "size" | "indexOf" | "lastIndexOf" | "family" => Some(Kind::Int),
            "lowerAscii" | "upperAscii" | "trim" | "replace" | "substring" | "charAt" | "join"
            | "format" | "strings.quote" | "string" => Some(Kind::String),
            "split" => Some(Kind::List),
            _ => None,
        },
        // `has()` is a presence test.
        Expr::Select(s) if s.test => Some(Kind::Bool),
        _ => None,
    }
}

/// Every name the expression uses that the environment does not declare,
/// and every `user` field that the `kubernetes.UserInfo` type lacks.
pub fn undeclared(e: &Expression, variable: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut bound = Vec::new();
    walk(e, variable, &mut bound, &mut problems);
    let mut seen = HashSet::new();
    problems.retain(|p| seen.insert(p.clone()));
    problems
}

fn walk(e: &Expression, variable: &str, bound: &mut Vec<String>, out: &mut Vec<String>) {
    match &e.expr {
        Expr::Ident(name) => {
            if name != variable && !bound.iter().any(|b| b == name) {
                out.push(format!("undeclared reference to '{name}'"));
            }
        }
        Expr::Select(s) => {
            if variable == "user"
                && matches!(&s.operand.expr, Expr::Ident(n) if n == "user" && !bound.iter().any(|b| b == n))
                && !USER_FIELDS.contains(&s.field.as_str())
            {
                out.push(format!(
                    "undefined field '{}' of kubernetes.UserInfo",
                    s.field
                ));
            }
            walk(&s.operand, variable, bound, out);
        }
        Expr::Call(c) => {
            // `optional.of(x)` parses as the member call `of` on the
            // identifier `optional`: a namespaced function.
            let namespace = match c.target.as_deref().map(|t| &t.expr) {
                Some(Expr::Ident(ns)) if ns != variable && !bound.iter().any(|b| b == ns) => {
                    Some(ns.as_str())
                }
                _ => None,
            };
            let name = match namespace {
                Some(ns) => format!("{ns}.{}", c.func_name),
                None => c.func_name.clone(),
            };
            if !is_operator(&name) && !FUNCTIONS.contains(&name.as_str()) {
                out.push(format!("undeclared reference to '{name}'"));
            }
            if c.func_name == "_?._"
                && variable == "user"
                && let [operand, field] = c.args.as_slice()
                && matches!(&operand.expr, Expr::Ident(n) if n == "user")
                && let Expr::Literal(LiteralValue::String(f)) = &field.expr
                && !USER_FIELDS.contains(&f.inner())
            {
                out.push(format!(
                    "undefined field '{}' of kubernetes.UserInfo",
                    f.inner()
                ));
            }
            if let Some(t) = &c.target
                && namespace.is_none()
            {
                walk(t, variable, bound, out);
            }
            for a in &c.args {
                walk(a, variable, bound, out);
            }
        }
        Expr::List(l) => l
            .elements
            .iter()
            .for_each(|x| walk(x, variable, bound, out)),
        Expr::Map(m) => {
            for entry in &m.entries {
                if let EntryExpr::MapEntry(me) = &entry.expr {
                    walk(&me.key, variable, bound, out);
                    walk(&me.value, variable, bound, out);
                }
            }
        }
        Expr::Struct(s) => out.push(format!("undeclared reference to '{}'", s.type_name)),
        Expr::Comprehension(c) => {
            walk(&c.iter_range, variable, bound, out);
            walk(&c.accu_init, variable, bound, out);
            let before = bound.len();
            bound.push(c.iter_var.clone());
            if let Some(v2) = &c.iter_var2 {
                bound.push(v2.clone());
            }
            bound.push(c.accu_var.clone());
            walk(&c.loop_cond, variable, bound, out);
            walk(&c.loop_step, variable, bound, out);
            walk(&c.result, variable, bound, out);
            bound.truncate(before);
        }
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// Whether the expression selects `claims.<field>` (plainly or as
/// `claims.?<field>`), the test the apiserver applies for the
/// `email_verified` rule. An index (`claims["email"]`) is not a select.
pub fn selects_claim(e: &Expression, field: &str) -> bool {
    let is_claims = |x: &Expression| matches!(&x.expr, Expr::Ident(n) if n == "claims");
    match &e.expr {
        Expr::Select(s) => {
            (is_claims(&s.operand) && s.field == field) || selects_claim(&s.operand, field)
        }
        Expr::Call(c) => {
            if c.func_name == "_?._"
                && let [operand, f] = c.args.as_slice()
                && is_claims(operand)
                && matches!(&f.expr, Expr::Literal(LiteralValue::String(s)) if s.inner() == field)
            {
                return true;
            }
            c.args.iter().any(|a| selects_claim(a, field))
                || c.target.as_deref().is_some_and(|t| selects_claim(t, field))
        }
        Expr::List(l) => l.elements.iter().any(|x| selects_claim(x, field)),
        Expr::Map(m) => m.entries.iter().any(|entry| match &entry.expr {
            EntryExpr::MapEntry(me) => {
                selects_claim(&me.key, field) || selects_claim(&me.value, field)
            }
            EntryExpr::StructField(sf) => selects_claim(&sf.value, field),
        }),
        Expr::Comprehension(c) => [
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ]
        .into_iter()
        .any(|x| selects_claim(x, field)),
        _ => false,
    }
}

//! A worst-case cost bound for an expression, computed at start-up.
//!
//! The `cel` crate has no cost tracking and no way to stop an evaluation
//! half-way, so the apiserver's run-time limit (cel-go's per-call cost
//! limit) cannot be copied. What bounds an evaluation here instead:
//!
//! - the input: expressions run on the payload of a token no longer than
//!   [`MAX_TOKEN_BYTES`](crate::authz::verify::MAX_TOKEN_BYTES), and only
//!   once its signature has been verified, so no string in `claims` is
//!   longer, and no list has more elements, than [`INPUT_BOUND`];
//! - the expression: [`estimate`] walks it with every input at that bound
//!   and adds up the steps it could take (one per node, one per character
//!   or element a string or list function visits, a comprehension's body
//!   once per element of its range), and start-up refuses an expression
//!   whose bound exceeds [`COST_LIMIT`].
//!
//! The estimate is amortised where CEL's semantics make it safe: inside a
//! comprehension the iteration variable counts as one unit for functions
//! that are linear in it (the elements of a list share the list's bound,
//! so all iterations together visit at most the whole list), but at its
//! full bound where a function multiplies sizes (`replace`). Appending to
//! the accumulator of `map`/`filter` is counted per element, as the crate
//! appends in place.

use cel::common::ast::{EntryExpr, Expr, LiteralValue};
use cel::parser::Expression;

use crate::authz::verify::MAX_TOKEN_BYTES;

/// The longest string, or longest list, any claim of an accepted token can
/// hold: the base64url-decoded size of the largest token.
pub const INPUT_BOUND: f64 = (MAX_TOKEN_BYTES / 4 * 3) as f64;

/// Steps one expression may take at worst. Ten million single-character or
/// single-element visits; cel-go counts a character visit as a tenth of a
/// unit, which makes this the apiserver's per-call limit of one million.
pub const COST_LIMIT: f64 = 10_000_000.0;

#[derive(Debug, Clone, Copy)]
struct Est {
    /// Steps taken.
    cost: f64,
    /// Size (characters or elements) counted once per iteration, amortised.
    unit: f64,
    /// Size at worst, for functions that multiply sizes.
    max: f64,
}

impl Est {
    fn scalar(cost: f64) -> Est {
        Est {
            cost,
            unit: 1.0,
            max: 1.0,
        }
    }
}

/// The bound on steps `e` takes with `variable` (`claims` or `user`) at
/// [`INPUT_BOUND`].
pub fn estimate(e: &Expression) -> f64 {
    let mut scope = Vec::new();
    est(e, &mut scope).cost
}

fn est(e: &Expression, scope: &mut Vec<(String, Est)>) -> Est {
    match &e.expr {
        Expr::Literal(LiteralValue::String(s)) => {
            let n = s.inner().len().max(1) as f64;
            Est {
                cost: 1.0,
                unit: n,
                max: n,
            }
        }
        Expr::Literal(LiteralValue::Bytes(b)) => {
            let n = b.len().max(1) as f64;
            Est {
                cost: 1.0,
                unit: n,
                max: n,
            }
        }
        Expr::Literal(_) | Expr::Unspecified => Est::scalar(1.0),
        Expr::Ident(name) => match scope.iter().rev().find(|(n, _)| n == name) {
            Some((_, e)) => Est { cost: 1.0, ..*e },
            None => Est {
                cost: 1.0,
                unit: INPUT_BOUND,
                max: INPUT_BOUND,
            },
        },
        Expr::Select(s) => {
            let o = est(&s.operand, scope);
            Est {
                cost: o.cost + 1.0,
                ..o
            }
        }
        Expr::List(l) => sum(l.elements.iter().map(|x| est(x, scope))),
        Expr::Map(m) => sum(m.entries.iter().flat_map(|entry| match &entry.expr {
            EntryExpr::MapEntry(me) => vec![est(&me.key, scope), est(&me.value, scope)],
            EntryExpr::StructField(sf) => vec![est(&sf.value, scope)],
        })),
        Expr::Struct(s) => sum(s.entries.iter().filter_map(|entry| match &entry.expr {
            EntryExpr::StructField(sf) => Some(est(&sf.value, scope)),
            EntryExpr::MapEntry(_) => None,
        })),
        Expr::Call(c) => {
            let target = c.target.as_deref().map(|t| est(t, scope));
            let args: Vec<Est> = c.args.iter().map(|a| est(a, scope)).collect();
            let all: Vec<Est> = target.into_iter().chain(args.iter().copied()).collect();
            let base: f64 = all.iter().map(|a| a.cost).sum::<f64>() + 1.0;
            let linear: f64 = all.iter().map(|a| a.unit).sum();
            let widest = all.iter().fold(Est::scalar(0.0), |acc, a| Est {
                cost: 0.0,
                unit: acc.unit.max(a.unit),
                max: acc.max.max(a.max),
            });
            match c.func_name.as_str() {
                // Short-circuiting and selection visit no data themselves.
                "_&&_" | "_||_" | "!_" | "_?_:_" | "@not_strictly_false" | "-_" => Est {
                    cost: base,
                    ..widest
                },
                "_+_" => {
                    // `@result + [x]` in map/filter appends in place.
                    let appends = c
                        .args
                        .iter()
                        .any(|a| matches!(&a.expr, Expr::Ident(n) if n.starts_with('@')));
                    let total = Est {
                        cost: 0.0,
                        unit: all.iter().map(|a| a.unit).sum(),
                        max: all.iter().map(|a| a.max).sum(),
                    };
                    // Values are shared, not copied: appending one to the
                    // accumulator is one step; joining strings or lists
                    // visits them.
                    let visited = if appends { 1.0 } else { linear };
                    Est {
                        cost: base + visited,
                        ..total
                    }
                }
                "replace" => {
                    // Every match may be replaced by `new`: the result is
                    // the receiver's size times (1 + new's size).
                    let recv = all.first().copied().unwrap_or(Est::scalar(1.0));
                    let new = all.get(2).copied().unwrap_or(Est::scalar(1.0));
                    let factor = 1.0 + new.max;
                    Est {
                        cost: base + linear + recv.unit * factor,
                        unit: recv.unit * factor,
                        max: recv.max * factor,
                    }
                }
                "join" => {
                    let list = all.first().copied().unwrap_or(Est::scalar(1.0));
                    let sep = all.get(1).copied().unwrap_or(Est::scalar(0.0));
                    let factor = 1.0 + sep.max;
                    Est {
                        cost: base + list.unit * factor,
                        unit: list.unit * factor,
                        max: list.max * factor,
                    }
                }
                // The format string with every argument's string form.
                "format" => Est {
                    cost: base + linear,
                    unit: linear,
                    max: all.iter().map(|a| a.max).sum(),
                },
                // Result as large as the input, built in one pass.
                "lowerAscii"
                | "upperAscii"
                | "trim"
                | "substring"
                | "split"
                | "string"
                | "strings.quote"
                | "bytes"
                | "_[_]"
                | "_[?_]"
                | "_?._"
                | "orValue"
                | "value"
                | "or"
                | "optional.of"
                | "optional.ofNonZeroValue"
                | "dyn" => Est {
                    cost: base + linear,
                    ..widest
                },
                // Everything else visits its operands once and returns a
                // scalar: comparisons, `in`, `size`, `contains`,
                // `startsWith`, `indexOf`, `matches` (the regex crate runs
                // in time linear in the input), conversions to numbers.
                _ => Est::scalar(base + linear),
            }
        }
        Expr::Comprehension(c) => {
            let range = est(&c.iter_range, scope);
            let init = est(&c.accu_init, scope);
            let iterations = range.max.max(1.0);
            let before = scope.len();
            // All elements together are at most the range's size.
            let element = Est {
                cost: 1.0,
                unit: 1.0,
                max: range.max,
            };
            scope.push((c.iter_var.clone(), element));
            if let Some(v2) = &c.iter_var2 {
                scope.push((v2.clone(), element));
            }
            // The accumulator holds at most one entry per element.
            let accu = range.max + init.max;
            scope.push((
                c.accu_var.clone(),
                Est {
                    cost: 1.0,
                    unit: accu,
                    max: accu,
                },
            ));
            let cond = est(&c.loop_cond, scope);
            let step = est(&c.loop_step, scope);
            let result = est(&c.result, scope);
            scope.truncate(before);
            Est {
                cost: range.cost + init.cost + iterations * (cond.cost + step.cost) + result.cost,
                unit: result.unit.max(range.unit),
                max: result.max.max(range.max),
            }
        }
    }
}

fn sum(items: impl Iterator<Item = Est>) -> Est {
    items.fold(Est::scalar(1.0), |acc, e| Est {
        cost: acc.cost + e.cost,
        unit: acc.unit + e.unit,
        max: acc.max + e.max,
    })
}

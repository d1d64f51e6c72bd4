//! Between JSON and CEL: the token payload as the `claims` map, the mapped
//! user as the `user` object, and expression results back to strings with
//! the apiserver's conversion rules.

use std::collections::HashMap;
use std::sync::Arc;

use cel::Value;
use cel::objects::{Key, Map};

/// A JSON value as the apiserver hands it to CEL: claims go through Go's
/// unstructured conversion, so a number that fits an `int64` is an `int`
/// and every other number a `double`.
pub fn from_json(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(items) => {
            Value::List(Arc::new(items.iter().map(from_json).collect()))
        }
        serde_json::Value::Object(map) => object(map),
    }
}

/// The whole payload as one CEL map.
pub fn object(map: &serde_json::Map<String, serde_json::Value>) -> Value {
    let entries: HashMap<Key, Value> = map
        .iter()
        .map(|(k, v)| (Key::String(Arc::new(k.clone())), from_json(v)))
        .collect();
    Value::Map(Map {
        map: Arc::new(entries),
    })
}

fn string_list(items: &[String]) -> Value {
    Value::List(Arc::new(
        items
            .iter()
            .map(|s| Value::String(Arc::new(s.clone())))
            .collect(),
    ))
}

/// The `user` variable of `userValidationRules`: `username`, `uid`,
/// `groups` and `extra` always present (empty when unset), as the apiserver
/// fills them in before evaluating.
pub fn user(
    username: &str,
    uid: Option<&str>,
    groups: &[String],
    extra: &[(String, Vec<String>)],
) -> Value {
    let key = |k: &str| Key::String(Arc::new(k.to_owned()));
    let extra: HashMap<Key, Value> = extra
        .iter()
        .map(|(k, vs)| (key(k), string_list(vs)))
        .collect();
    let fields: HashMap<Key, Value> = [
        ("username", Value::String(Arc::new(username.to_owned()))),
        ("uid", Value::String(Arc::new(uid.unwrap_or("").to_owned()))),
        ("groups", string_list(groups)),
        (
            "extra",
            Value::Map(Map {
                map: Arc::new(extra),
            }),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (key(k), v))
    .collect();
    Value::Map(Map {
        map: Arc::new(fields),
    })
}

/// The fields the apiserver's `kubernetes.UserInfo` CEL type declares.
pub const USER_FIELDS: [&str; 4] = ["username", "uid", "groups", "extra"];

/// What a result should have been and is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotA {
    String,
    StringOrList,
    Bool,
}

/// A username or uid result: a string, nothing else.
pub fn to_string(v: Value) -> Result<String, NotA> {
    match v {
        Value::String(s) => Ok(Arc::unwrap_or_clone(s)),
        _ => Err(NotA::String),
    }
}

/// A groups or extra result, as the apiserver converts it: a string is a
/// one-element list, a list must hold only strings, `null` is nothing;
/// empty strings are dropped, so `""`, `[]` and `[""]` all give no values.
pub fn to_string_list(v: Value) -> Result<Vec<String>, NotA> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![Arc::unwrap_or_clone(s)]),
        Value::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items.iter() {
                match item {
                    Value::String(s) if s.is_empty() => {}
                    Value::String(s) => out.push(s.as_str().to_owned()),
                    _ => return Err(NotA::StringOrList),
                }
            }
            Ok(out)
        }
        _ => Err(NotA::StringOrList),
    }
}

/// A validation rule's result: a boolean.
pub fn to_bool(v: &Value) -> Result<bool, NotA> {
    match v {
        Value::Bool(b) => Ok(*b),
        _ => Err(NotA::Bool),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn numbers_convert_as_unstructured_does() {
        assert_eq!(from_json(&json!(7)), Value::Int(7));
        assert_eq!(from_json(&json!(-7)), Value::Int(-7));
        assert_eq!(from_json(&json!(1.5)), Value::Float(1.5));
        assert_eq!(from_json(&json!(u64::MAX)), Value::Float(u64::MAX as f64));
    }

    #[test]
    fn string_list_results_follow_the_apiserver() {
        let s = |x: &str| Value::String(Arc::new(x.to_owned()));
        let list = |xs: Vec<Value>| Value::List(Arc::new(xs));
        let cases: Vec<(Value, Result<Vec<&str>, NotA>)> = vec![
            (s("a"), Ok(vec!["a"])),
            (s(""), Ok(vec![])),
            (Value::Null, Ok(vec![])),
            (list(vec![]), Ok(vec![])),
            (list(vec![s("a"), s(""), s("b")]), Ok(vec!["a", "b"])),
            (list(vec![s("a"), Value::Int(1)]), Err(NotA::StringOrList)),
            (list(vec![Value::Null]), Err(NotA::StringOrList)),
            (Value::Int(1), Err(NotA::StringOrList)),
            (Value::Bool(true), Err(NotA::StringOrList)),
        ];
        for (v, want) in cases {
            let desc = format!("{v:?}");
            let want = want.map(|w| w.into_iter().map(String::from).collect::<Vec<_>>());
            assert_eq!(to_string_list(v), want, "{desc}");
        }
        assert_eq!(to_string(Value::Null), Err(NotA::String));
        assert_eq!(to_string(s("x")), Ok("x".to_owned()));
    }
}

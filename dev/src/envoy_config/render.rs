//! `${NAME}` substitution, and nothing else.
//!
//! Rendering is strict both ways: a placeholder without a value and a value
//! without a placeholder in the table are errors, so a template and its
//! consumers cannot drift apart silently.

use std::collections::BTreeMap;

use super::placeholders::Placeholders;

/// Why a template cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("unknown placeholder ${{{0}}} in template")]
    UnknownPlaceholder(String),
    #[error("no value given for placeholder ${{{0}}}")]
    MissingValue(String),
    #[error("value given for {0}, which is not a known placeholder")]
    UnknownValue(String),
    #[error("unterminated placeholder at byte {0}")]
    Unterminated(usize),
}

impl Placeholders {
    /// Substitutes every `${NAME}` in `template` with `values[NAME]`.
    ///
    /// Fails on a placeholder that is not in the table, on a known
    /// placeholder without a value, and on a value whose name is not in the
    /// table. A `$` not followed by `{` is copied as it is. Values are
    /// inserted verbatim (no YAML quoting): callers pass plain paths, ports
    /// and host names.
    pub fn render(
        &self,
        template: &str,
        values: &BTreeMap<String, String>,
    ) -> Result<String, RenderError> {
        if let Some(name) = values.keys().find(|k| !self.is_known(k)) {
            return Err(RenderError::UnknownValue(name.clone()));
        }
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        let mut offset = 0;
        while let Some(at) = rest.find("${") {
            out.push_str(&rest[..at]);
            let after = &rest[at + 2..];
            let end = after
                .find('}')
                .ok_or(RenderError::Unterminated(offset + at))?;
            let name = &after[..end];
            if !self.is_known(name) {
                return Err(RenderError::UnknownPlaceholder(name.to_owned()));
            }
            let value = values
                .get(name)
                .ok_or_else(|| RenderError::MissingValue(name.to_owned()))?;
            out.push_str(value);
            let consumed = at + 2 + end + 1;
            offset += consumed;
            rest = &rest[consumed..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::placeholders::Preset;
    use super::super::{
        AUTHZ_CLIENT_SDS_TEMPLATE, ENVOY_TEMPLATE, REMOTE_AUTHZ_TEMPLATE, SDS_TEMPLATE,
    };
    use super::*;

    fn vals(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn substitutes_known_placeholders() {
        let table = Placeholders::parse(
            "AUTHZ_ADDRESS: {pod: a, description: d}\nAUTHZ_PORT: {pod: \"1\", description: d}",
        )
        .unwrap();
        type Case<'a> = (
            &'a str,
            &'a [(&'a str, &'a str)],
            Result<&'a str, RenderError>,
        );
        let cases: &[Case] = &[
            (
                "port: ${AUTHZ_PORT}",
                &[("AUTHZ_PORT", "9001")],
                Ok("port: 9001"),
            ),
            (
                "${AUTHZ_ADDRESS}:${AUTHZ_PORT}",
                &[("AUTHZ_ADDRESS", "a"), ("AUTHZ_PORT", "1")],
                Ok("a:1"),
            ),
            ("cost: $5 and $x", &[], Ok("cost: $5 and $x")),
            ("no placeholders", &[], Ok("no placeholders")),
            (
                "${NOPE}",
                &[],
                Err(RenderError::UnknownPlaceholder("NOPE".into())),
            ),
            (
                "${AUTHZ_PORT}",
                &[],
                Err(RenderError::MissingValue("AUTHZ_PORT".into())),
            ),
            (
                "a ${AUTHZ_PORT",
                &[("AUTHZ_PORT", "1")],
                Err(RenderError::Unterminated(2)),
            ),
            (
                "x",
                &[("EXTRA", "1")],
                Err(RenderError::UnknownValue("EXTRA".into())),
            ),
        ];
        for (template, values, want) in cases {
            let got = table.render(template, &vals(values));
            assert_eq!(
                got.as_deref().map_err(Clone::clone),
                want.clone(),
                "{template}"
            );
        }
    }

    #[test]
    fn shipped_templates_use_only_known_placeholders_and_render_with_each_preset() {
        let table = Placeholders::shipped().unwrap();
        for preset in [Preset::Pod, Preset::Compose] {
            for template in [
                ENVOY_TEMPLATE,
                SDS_TEMPLATE,
                REMOTE_AUTHZ_TEMPLATE,
                AUTHZ_CLIENT_SDS_TEMPLATE,
            ] {
                let out = table.render(template, &table.values(preset)).unwrap();
                assert!(!out.contains("${"), "placeholder left: {out}");
                let _: serde_yaml_ng::Value = serde_yaml_ng::from_str(&out).unwrap();
            }
        }
    }

    #[test]
    fn every_placeholder_is_documented_and_used() {
        let table = Placeholders::shipped().unwrap();
        for (name, entry) in table.iter() {
            let token = format!("${{{name}}}");
            let templates = [
                ENVOY_TEMPLATE,
                SDS_TEMPLATE,
                REMOTE_AUTHZ_TEMPLATE,
                AUTHZ_CLIENT_SDS_TEMPLATE,
            ];
            // Used by a template, and listed with its default in the header
            // of a template that uses it.
            let users: Vec<&str> = templates
                .into_iter()
                .filter(|t| t.lines().any(|l| !l.starts_with('#') && l.contains(&token)))
                .collect();
            assert!(!users.is_empty(), "{name} is never used");
            let documented = users.iter().any(|t| {
                t.lines()
                    .any(|l| l.starts_with('#') && l.contains(&token) && l.contains(&entry.pod))
            });
            assert!(documented, "{name} is not documented with its default");
        }
    }
}

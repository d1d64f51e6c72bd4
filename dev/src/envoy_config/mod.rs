//! The shipped Envoy configuration (`envoy/envoy.yaml`, `envoy/sds-tls.yaml`,
//! `envoy/impersonation.lua`) and its one renderer, which the demo and
//! `kube-oidc-dev render-envoy` share.
//!
//! - [`placeholders`]: the table of `${NAME}` placeholders, read from
//!   `envoy/placeholders.yaml`, and its presets (pod, docker-compose).
//! - [`render`]: strict substitution of those placeholders.

pub mod placeholders;
pub mod render;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;

pub use placeholders::{Placeholder, Placeholders, Preset, TableError};
pub use render::RenderError;

/// The shipped Envoy configuration template.
pub const ENVOY_TEMPLATE: &str = include_str!("../../../envoy/envoy.yaml");
/// The shipped SDS template for the listener's certificate.
pub const SDS_TEMPLATE: &str = include_str!("../../../envoy/sds-tls.yaml");
/// The shipped Lua filter.
pub const IMPERSONATION_LUA: &str = include_str!("../../../envoy/impersonation.lua");

/// File names of a rendered set, the same as the templates' in `envoy/`.
pub const ENVOY_FILE: &str = "envoy.yaml";
pub const SDS_FILE: &str = "sds-tls.yaml";
pub const LUA_FILE: &str = "impersonation.lua";

/// The files of one Envoy set-up: the two templates and the Lua filter,
/// which is copied as it is.
#[derive(Debug, Clone)]
pub struct Templates {
    pub envoy: Cow<'static, str>,
    pub sds: Cow<'static, str>,
    pub lua: Cow<'static, str>,
}

impl Templates {
    /// The files built into this binary.
    pub fn shipped() -> Self {
        Self {
            envoy: Cow::Borrowed(ENVOY_TEMPLATE),
            sds: Cow::Borrowed(SDS_TEMPLATE),
            lua: Cow::Borrowed(IMPERSONATION_LUA),
        }
    }

    /// The files in `dir` (named as in `envoy/`), for rendering a template
    /// being edited without rebuilding.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path)
                .map(Cow::Owned)
                .with_context(|| format!("read {}", path.display()))
        };
        Ok(Self {
            envoy: read(ENVOY_FILE)?,
            sds: read(SDS_FILE)?,
            lua: read(LUA_FILE)?,
        })
    }

    /// Renders both templates with `values`, reporting every error (each
    /// unknown value, each template's), not only the first.
    pub fn render(
        &self,
        table: &Placeholders,
        values: &BTreeMap<String, String>,
    ) -> Result<Rendered, Vec<String>> {
        let unknown: Vec<String> = values
            .keys()
            .filter(|k| !table.is_known(k))
            .map(|k| RenderError::UnknownValue(k.clone()).to_string())
            .collect();
        if !unknown.is_empty() {
            return Err(unknown);
        }
        let one = |file: &str, template: &str| {
            table
                .render(template, values)
                .map_err(|e| format!("{file}: {e}"))
        };
        match (one(ENVOY_FILE, &self.envoy), one(SDS_FILE, &self.sds)) {
            (Ok(envoy), Ok(sds)) => Ok(Rendered {
                envoy,
                sds,
                lua: self.lua.to_string(),
            }),
            (envoy, sds) => Err(envoy.err().into_iter().chain(sds.err()).collect()),
        }
    }
}

/// A rendered set, ready to be written.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub envoy: String,
    pub sds: String,
    pub lua: String,
}

impl Rendered {
    /// Writes `envoy.yaml`, `sds-tls.yaml` and `impersonation.lua` into
    /// `dir`, creating it.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        for (name, text) in [
            (ENVOY_FILE, &self.envoy),
            (SDS_FILE, &self.sds),
            (LUA_FILE, &self.lua),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        }
        Ok(())
    }
}

/// Parses a `NAME=VALUE` placeholder assignment from the command line.
pub fn parse_assignment(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_assignments() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("A=1", Some(("A", "1"))),
            ("A=", Some(("A", ""))),
            ("A=b=c", Some(("A", "b=c"))),
            ("=1", None),
            ("A", None),
        ];
        for (input, want) in cases {
            let got = parse_assignment(input).ok();
            let want = want.map(|(k, v)| (k.to_owned(), v.to_owned()));
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn reports_every_error() {
        let table = Placeholders::parse("A: {pod: x, description: d}").unwrap();
        let templates = Templates {
            envoy: "${B}".into(),
            sds: "${A".into(),
            lua: "".into(),
        };
        let errors = templates
            .render(&table, &table.values(Preset::Pod))
            .unwrap_err();
        assert_eq!(
            errors,
            [
                "envoy.yaml: unknown placeholder ${B} in template",
                "sds-tls.yaml: unterminated placeholder at byte 0",
            ]
        );
        let mut values = table.values(Preset::Pod);
        values.insert("X".into(), "1".into());
        values.insert("Y".into(), "1".into());
        let errors = Templates::shipped().render(&table, &values).unwrap_err();
        assert_eq!(
            errors,
            [
                "value given for X, which is not a known placeholder",
                "value given for Y, which is not a known placeholder",
            ]
        );
    }
}

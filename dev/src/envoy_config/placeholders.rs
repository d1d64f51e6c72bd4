//! The placeholder table, `envoy/placeholders.yaml`: every `${NAME}` the
//! shipped templates may use, with its value in the Kubernetes pod and,
//! where it differs, in the docker-compose example. The file is the only
//! list; this module reads it and knows no name of its own.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `envoy/placeholders.yaml`, as built into this binary.
pub const PLACEHOLDERS_YAML: &str = include_str!("../../../envoy/placeholders.yaml");

/// One placeholder's entry in the table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placeholder {
    /// The value in the chart's pod.
    pub pod: String,
    /// The value in `docker-compose.yaml`, where it differs from `pod`.
    #[serde(default)]
    pub compose: Option<String>,
    /// What the placeholder sets.
    pub description: String,
}

/// The table cannot be parsed: a bug in `envoy/placeholders.yaml`.
#[derive(Debug, thiserror::Error)]
#[error("envoy/placeholders.yaml is not a valid placeholder table")]
pub struct TableError(#[from] serde_yaml_ng::Error);

/// Which of the table's values a render starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// The Kubernetes pod's values (`pod`).
    Pod,
    /// The docker-compose example's (`compose`, else `pod`).
    Compose,
    /// None: every placeholder needs a value of its own.
    None,
}

/// The known placeholders, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholders(BTreeMap<String, Placeholder>);

impl Placeholders {
    /// The table built into this binary.
    pub fn shipped() -> Result<Self, TableError> {
        Self::parse(PLACEHOLDERS_YAML)
    }

    /// Parses a table in the format of `envoy/placeholders.yaml`; unknown
    /// fields are errors.
    pub fn parse(yaml: &str) -> Result<Self, TableError> {
        Ok(Self(serde_yaml_ng::from_str(yaml)?))
    }

    /// Whether `name` is a known placeholder.
    pub fn is_known(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Every placeholder, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Placeholder)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The values of `preset`, as a map to override from.
    pub fn values(&self, preset: Preset) -> BTreeMap<String, String> {
        let pick = |p: &Placeholder| match preset {
            Preset::Pod => Some(p.pod.clone()),
            Preset::Compose => Some(p.compose.clone().unwrap_or_else(|| p.pod.clone())),
            Preset::None => None,
        };
        self.0
            .iter()
            .filter_map(|(k, p)| Some((k.clone(), pick(p)?)))
            .collect()
    }

    /// The docker-compose example's values: `compose` where the table has
    /// one, `pod` elsewhere. The files under `envoy/compose/` are rendered
    /// with these, and a test keeps them equal to a fresh render.
    pub fn compose_values(&self) -> BTreeMap<String, String> {
        self.values(Preset::Compose)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "
A:
  pod: \"1\"
  description: first
B:
  pod: b-pod
  compose: b-compose
  description: second
";

    #[test]
    fn presets_pick_their_values() {
        let t = Placeholders::parse(TABLE).unwrap();
        let cases: &[(Preset, &[(&str, &str)])] = &[
            (Preset::Pod, &[("A", "1"), ("B", "b-pod")]),
            (Preset::Compose, &[("A", "1"), ("B", "b-compose")]),
            (Preset::None, &[]),
        ];
        for (preset, want) in cases {
            let want: BTreeMap<String, String> = want
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            assert_eq!(t.values(*preset), want, "{preset:?}");
        }
    }

    #[test]
    fn rejects_malformed_tables() {
        for yaml in [
            "A: {pod: x, description: d, default: y}",
            "A: {description: d}",
            "A: {pod: [8443], description: d}",
            "- A",
        ] {
            assert!(Placeholders::parse(yaml).is_err(), "{yaml}");
        }
    }

    #[test]
    fn shipped_table_parses() {
        let t = Placeholders::shipped().unwrap();
        assert!(t.is_known("AUTHZ_PORT"));
        assert!(t.iter().all(|(_, p)| !p.description.is_empty()));
    }
}

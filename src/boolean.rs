//! One boolean grammar for every flag and environment variable: Go's
//! `strconv.ParseBool`, which kube-oidc-proxy's and the apiserver's flags
//! use. A boolean flag given alone (`--token-passthrough`) means true, as
//! with Go's pflag; `--flag=false` turns it off. The `=` is required, as in
//! pflag, where `--flag false` leaves `false` as a stray argument.

/// Parses `1 t T TRUE true True` and `0 f F FALSE false False`. For clap:
/// `value_parser = boolean::parse`.
pub fn parse(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "invalid boolean {s:?}: expected true or false (or 1, t, T, TRUE, True, 0, f, F, FALSE, False)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_go() {
        for s in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse(s), Ok(true), "{s}");
        }
        for s in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse(s), Ok(false), "{s}");
        }
        for s in ["", "yes", "on", "tRUE", " true", "2"] {
            assert!(parse(s).is_err(), "{s}");
        }
    }
}

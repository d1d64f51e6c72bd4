//! One duration grammar for every flag: Go's `time.ParseDuration`, which
//! kube-oidc-proxy's and the apiserver's flags use, so values move over
//! unchanged: `250ms`, `30s`, `5m`, `1m30s`, `1.5h`, `0`. A bare number
//! other than `0` is refused (Go refuses it too: is `10` seconds or
//! milliseconds?), as are negative values, which no flag here means.

use std::time::Duration;

/// Why a duration does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: expected e.g. 250ms, 30s, 5m or 1m30s (units ns, us, ms, s, m, h)"
)]
pub struct DurationError {
    input: String,
}

/// Parses a Go duration. For clap: `value_parser = duration::parse`.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let bad = || DurationError {
        input: s.to_owned(),
    };
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number = &rest[..number_len];
        if number.is_empty() || number == "." {
            return Err(bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        let part = Duration::try_from_secs_f64(value * nanos_per_unit / 1e9).map_err(|_| bad())?;
        total = total.checked_add(part).ok_or_else(bad)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_go() {
        let table: &[(&str, Option<u128>)] = &[
            ("0", Some(0)),
            ("250ms", Some(250_000_000)),
            ("30s", Some(30_000_000_000)),
            ("300s", Some(300_000_000_000)),
            ("5m", Some(300_000_000_000)),
            ("1m30s", Some(90_000_000_000)),
            ("1h2m3s4ms", Some(3_723_004_000_000)),
            ("1.5s", Some(1_500_000_000)),
            ("1.5h", Some(5_400_000_000_000)),
            (".5s", Some(500_000_000)),
            ("2h", Some(7_200_000_000_000)),
            ("10us", Some(10_000)),
            ("10µs", Some(10_000)),
            ("7ns", Some(7)),
            ("", None),
            ("10", None),
            ("s", None),
            (".s", None),
            ("5d", None),
            ("-1s", None),
            ("+1s", None),
            ("1 s", None),
            ("1s ", None),
            ("1S", None),
            ("1m30", None),
        ];
        for (input, want) in table {
            assert_eq!(parse(input).ok().map(|d| d.as_nanos()), *want, "{input:?}");
        }
    }

    #[test]
    fn the_error_names_the_input_and_the_grammar() {
        let e = parse("10").unwrap_err().to_string();
        assert!(e.contains("\"10\"") && e.contains("1m30s"), "{e}");
    }
}

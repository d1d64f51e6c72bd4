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
    // Integer nanoseconds, as Go counts them: the integer part of each
    // component is exact (a float here lost nanoseconds past 2^53, so a
    // value did not survive being written back as `<nanos>ns`), and the
    // total is capped at Go's maximum, i64::MAX nanoseconds.
    const MAX_NANOS: u64 = i64::MAX as u64;
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let (int, after_int) = leading_int(rest).ok_or_else(bad)?;
        let pre = after_int.len() != rest.len();
        rest = after_int;
        let (mut frac, mut scale, mut post) = (0u64, 1.0f64, false);
        if let Some(after_dot) = rest.strip_prefix('.') {
            let (f, sc, after_frac) = leading_fraction(after_dot);
            post = after_frac.len() != after_dot.len();
            (frac, scale) = (f, sc);
            rest = after_frac;
        }
        if !pre && !post {
            return Err(bad());
        }
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit: u64 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        let mut part = int
            .checked_mul(unit)
            .filter(|v| *v <= MAX_NANOS)
            .ok_or_else(bad)?;
        if frac > 0 {
            // At most 3.6e12 (a fraction of an hour): exact in an f64.
            part = part
                .checked_add((frac as f64 * (unit as f64 / scale)) as u64)
                .filter(|v| *v <= MAX_NANOS)
                .ok_or_else(bad)?;
        }
        total = total
            .checked_add(part)
            .filter(|v| *v <= MAX_NANOS)
            .ok_or_else(bad)?;
    }
    Ok(Duration::from_nanos(total))
}

/// The leading decimal digits of `s` and what follows them; `None` on
/// overflow.
fn leading_int(s: &str) -> Option<(u64, &str)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let mut v: u64 = 0;
    for b in &s.as_bytes()[..digits] {
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some((v, &s[digits..]))
}

/// The digits after a decimal point as `(value, scale)` with `value /
/// scale` the fraction, and what follows them. Digits past what a u64
/// holds are skipped, as Go's `leadingFraction` does.
fn leading_fraction(s: &str) -> (u64, f64, &str) {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (mut v, mut scale, mut overflow) = (0u64, 1.0f64, false);
    for b in &s.as_bytes()[..digits] {
        if overflow {
            continue;
        }
        match v
            .checked_mul(10)
            .and_then(|x| x.checked_add(u64::from(b - b'0')))
        {
            Some(x) => {
                v = x;
                scale *= 10.0;
            }
            None => overflow = true,
        }
    }
    (v, scale, &s[digits..])
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

    /// Found by the `duration` fuzz target: through an f64 of seconds,
    /// `645452546ms9659h` lost 4 ns, and its `<nanos>ns` spelling parsed
    /// to another value. Go counts integer nanoseconds, capped at
    /// i64::MAX.
    #[test]
    fn exact_nanoseconds_up_to_gos_maximum() {
        let table: &[(&str, Option<u128>)] = &[
            ("645452546ms9659h", Some(35_417_852_546_000_000)),
            ("35417852546000000ns", Some(35_417_852_546_000_000)),
            ("9223372036854775807ns", Some(9_223_372_036_854_775_807)),
            ("9223372036854775808ns", None),
            ("2562047h", Some(9_223_369_200_000_000_000)),
            ("2562048h", None),
            ("2562047h47m16.854775807s", Some(9_223_372_036_854_775_807)),
            ("2562047h47m16.854775808s", None),
            ("99999999999999999999ns", None),
            ("1.000000000000000000000001s", Some(1_000_000_000)),
            ("0.1ns", Some(0)),
            ("1.s", Some(1_000_000_000)),
            (".", None),
            ("1..5s", None),
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

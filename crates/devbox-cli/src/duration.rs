//! Durations as people type them on the command line (`90s`, `10m`, `1h`,
//! `1h30m`) and as the CLI prints them back, in whole seconds, which is what
//! the API takes.

/// The forms a duration may take, quoted in every refusal.
pub const FORMS: &str = "a whole number with a unit, like 90s, 10m, 1h or 1h30m \
                         (units h, m and s, largest first, each at most once)";

/// Seconds in each unit, largest first: the order they must be written in.
const UNITS: [(char, u64); 3] = [('h', 3600), ('m', 60), ('s', 1)];

/// Parses `1h30m`-style durations into seconds. A bare number is refused
/// rather than guessed at: `10` could mean seconds or minutes.
pub fn parse(s: &str) -> Result<u64, String> {
    let refuse = || format!("invalid duration {s:?}: expected {FORMS}");
    let text = s.trim();
    if text.is_empty() {
        return Err(refuse());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    // Units still allowed: each one found removes itself and the larger ones.
    let mut allowed: &[(char, u64)] = &UNITS;
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = c.to_ascii_lowercase();
        let at = allowed.iter().position(|(u, _)| *u == unit);
        let (Some(at), false) = (at, digits.is_empty()) else {
            return Err(refuse());
        };
        let n: u64 = digits.parse().map_err(|_| refuse())?;
        total = n
            .checked_mul(allowed[at].1)
            .and_then(|secs| total.checked_add(secs))
            .ok_or_else(refuse)?;
        allowed = &allowed[at + 1..];
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(refuse());
    }
    Ok(total)
}

/// Seconds as [`parse`] reads them, in the largest units that divide them:
/// `600` is `10m`, `5400` is `1h30m`, `90` is `1m30s`.
pub fn format(secs: u64) -> String {
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    let mut rest = secs;
    for (unit, size) in UNITS {
        let n = rest / size;
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
            rest %= size;
        }
    }
    out
}

/// An auto-commit interval: a duration, or `off`, which the API spells 0.
/// A zero duration is refused: it reads as "as often as possible", which is
/// not what 0 means to the server.
pub fn parse_auto_commit(s: &str) -> Result<u64, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(0);
    }
    match parse(s) {
        Ok(0) => Err(format!(
            "an auto-commit interval of {s:?} is zero: give {FORMS}, or off to turn it off"
        )),
        Ok(secs) => Ok(secs),
        Err(_) => Err(format!(
            "invalid auto-commit interval {s:?}: expected off or {FORMS}"
        )),
    }
}

/// An idle window for `--auto-stop`: a duration, or `off` (0).
pub fn parse_auto_stop(s: &str) -> Result<u64, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(0);
    }
    match parse(s) {
        Ok(0) => Err(format!(
            "an auto-stop window of {s:?} is zero: give {FORMS}, or off to turn it off"
        )),
        Ok(secs) => Ok(secs),
        Err(_) => Err(format!(
            "invalid auto-stop window {s:?}: expected off or {FORMS}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unit_and_their_combinations_parse() {
        assert_eq!(parse("90s"), Ok(90));
        assert_eq!(parse("10m"), Ok(600));
        assert_eq!(parse("1h"), Ok(3600));
        assert_eq!(parse("1h30m"), Ok(5400));
        assert_eq!(parse("2h0m5s"), Ok(7205));
        assert_eq!(parse("1m30s"), Ok(90));
        assert_eq!(parse(" 10M "), Ok(600));
        assert_eq!(parse("0s"), Ok(0));
    }

    #[test]
    fn anything_else_is_refused_with_the_forms() {
        for bad in [
            "", "10", "m", "10x", "1.5h", "-5m", "30m1h", "1h1h", "1h 30m", "10mm", "1d", "off",
            "1h30",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.starts_with("invalid duration"), "{bad}: {e}");
            assert!(e.contains("90s, 10m, 1h or 1h30m"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_duration_too_long_to_count_is_refused() {
        assert!(parse("99999999999999999999s").is_err());
        assert!(parse(&format!("{}h", u64::MAX / 3600 + 1)).is_err());
        assert_eq!(parse(&format!("{}s", u64::MAX)), Ok(u64::MAX));
        assert!(parse(&format!("1m{}s", u64::MAX)).is_err());
    }

    #[test]
    fn durations_print_in_the_largest_units_that_divide_them() {
        assert_eq!(format(0), "0s");
        assert_eq!(format(45), "45s");
        assert_eq!(format(90), "1m30s");
        assert_eq!(format(600), "10m");
        assert_eq!(format(3600), "1h");
        assert_eq!(format(5400), "1h30m");
        assert_eq!(format(86_400 + 1), "24h1s");
        for secs in [1, 59, 61, 3599, 3601, 7205, 123_456] {
            assert_eq!(parse(&format(secs)), Ok(secs), "{secs}");
        }
    }

    #[test]
    fn auto_commit_takes_off_but_not_zero() {
        assert_eq!(parse_auto_commit("off"), Ok(0));
        assert_eq!(parse_auto_commit("OFF"), Ok(0));
        assert_eq!(parse_auto_commit("30m"), Ok(1800));
        let e = parse_auto_commit("0m").unwrap_err();
        assert!(e.contains("is zero") && e.contains("off"), "{e}");
        let e = parse_auto_commit("soon").unwrap_err();
        assert!(
            e.starts_with("invalid auto-commit interval \"soon\": expected off or"),
            "{e}"
        );
        assert!(e.contains("1h30m"), "{e}");
    }
}

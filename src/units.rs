//! Sizes (`2TB`, `500GiB`) and intervals (`6h`, `30m`, `1s`) as written in flags and config.

use std::time::Duration;

/// Parse a size: a number with an optional unit B, KB, MB, GB, TB (powers of 1000) or KiB,
/// MiB, GiB, TiB (powers of 1024); `K`, `M`, `G`, `T` alone are the decimal units.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let body = text.trim();
    let split = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, unit) = body.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size: use e.g. 2TB, 500GiB or 800MB"))?;
    let multiplier = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1e12,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"
            ));
        }
    };
    let bytes = value * multiplier;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("`{text}` is not a usable size"));
    }
    Ok(bytes as u64)
}

/// A size for people: `1.5 GiB` (powers of 1024, one decimal; bytes below 1 KiB).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Parse an interval: a whole number with an optional unit `s` (default), `m`, `h` or `d`.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let body = text.trim();
    let split = body
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(body.len());
    let (number, unit) = body.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not an interval: use e.g. 6h, 30m, 1d or 90s"))?;
    let seconds = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use s, m, h or d"
            ));
        }
    };
    match value.checked_mul(seconds) {
        Some(total) if total > 0 && total <= 365 * 86_400 => Ok(Duration::from_secs(total)),
        _ => Err(format!("`{text}` is out of range: between 1s and 365d")),
    }
}

/// Seconds as the largest whole unit: `6h`, `30m`, `1d`, `90s`.
pub fn format_interval(seconds: i64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if seconds >= size && seconds % size == 0 {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("2TB"), Ok(2_000_000_000_000));
        assert_eq!(parse_size("500GiB"), Ok(500 << 30));
        assert_eq!(parse_size("1.5M"), Ok(1_500_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn parses_intervals() {
        assert_eq!(parse_interval("6h"), Ok(Duration::from_secs(6 * 3600)));
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_interval("2d"), Ok(Duration::from_secs(2 * 86_400)));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("1.5h").is_err());
        assert!(parse_interval("6w").is_err());
        assert!(parse_interval("1000d").is_err());
        assert_eq!(format_interval(6 * 3600), "6h");
        assert_eq!(format_interval(90), "90s");
        assert_eq!(format_interval(1800), "30m");
        assert_eq!(format_interval(86_400), "1d");
    }
}

//! What a `Range` header asks of a body of a known size (RFC 9110 §14), for `/resolve` bodies and
//! xorb ranges alike.

/// What a `Range` header asks of a body of a known size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No (usable) range: the whole body with `200`.
    Full,
    /// `206` with bytes `start..=end`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// `416`: the start is at or past the end.
    Unsatisfiable,
}

/// Interpret a `Range` header for a body of `size` bytes. Only the first range of a list is
/// served; malformed headers and other units are ignored (RFC 9110 §14.2).
pub fn parse_range(value: Option<&str>, size: u64) -> RangeAnswer {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeAnswer::Full;
    };
    let first = spec.split(',').next().unwrap_or("").trim();
    let Some((a, b)) = first.split_once('-') else {
        return RangeAnswer::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return RangeAnswer::Full;
        };
        if n == 0 || size == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        return RangeAnswer::Partial {
            start: size.saturating_sub(n),
            end: size - 1,
        };
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeAnswer::Full;
    };
    let end = if b.is_empty() {
        None
    } else {
        match b.parse::<u64>() {
            Ok(end) if end >= start => Some(end),
            _ => return RangeAnswer::Full,
        }
    };
    if start >= size {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Partial {
        start,
        end: end.map_or(size - 1, |e| e.min(size - 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeAnswer::*;

    #[test]
    fn ranges() {
        let p = |s, e| Partial { start: s, end: e };
        assert_eq!(parse_range(None, 10), Full);
        assert_eq!(parse_range(Some("bytes=0-0"), 10), p(0, 0));
        assert_eq!(parse_range(Some("bytes=3-"), 10), p(3, 9));
        assert_eq!(parse_range(Some("bytes=3-5"), 10), p(3, 5));
        assert_eq!(parse_range(Some("bytes=3-10"), 10), p(3, 9));
        assert_eq!(parse_range(Some("bytes=3-1000"), 10), p(3, 9));
        assert_eq!(parse_range(Some("bytes=-4"), 10), p(6, 9));
        assert_eq!(parse_range(Some("bytes=-40"), 10), p(0, 9));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=10-20"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-0"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-3"), 10), Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), Full);
        assert_eq!(parse_range(Some("bytes=x-1"), 10), Full);
        assert_eq!(parse_range(Some("bytes=1-2, 4-5"), 10), p(1, 2));
    }
}

//! Dates as Elasticsearch's dynamic mapping detects them (`yyyy-MM-dd HH:mm:ss` and
//! `strict_date_optional_time`) and date math in range bounds (`now-7d/d`, `2019-01-01||+1M`).

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn to_millis(dt: OffsetDateTime) -> Millis {
    (dt.unix_timestamp_nanos() / 1_000_000) as Millis
}

/// Parses `yyyy-MM-dd`, optionally followed by `T` (or, for the second detected format, a
/// space) and `HH:mm[:ss[.fraction]]`, optionally an offset (`Z`, `±HH:mm`, `±HHmm`).
/// With `partial`, `yyyy` and `yyyy-MM` are accepted too (range bounds, not detection).
fn parse_iso(s: &str, partial: bool) -> Option<Millis> {
    let (date_part, rest) = match s.find(['T', ' ']) {
        Some(i) => (&s[..i], Some((&s[i..i + 1], &s[i + 1..]))),
        None => (s, None),
    };
    let mut parts = date_part.split('-');
    let year = digits(parts.next()?, 4)? as i32;
    let month = match parts.next() {
        Some(m) => digits(m, 2)?,
        None if partial && rest.is_none() => 1,
        None => return None,
    };
    let day = match parts.next() {
        Some(d) => digits(d, 2)?,
        None if partial && rest.is_none() => 1,
        None => return None,
    };
    if parts.next().is_some() {
        return None;
    }
    let date =
        Date::from_calendar_date(year, Month::try_from(month as u8).ok()?, day as u8).ok()?;
    let Some((sep, rest)) = rest else {
        return Some(to_millis(date.midnight().assume_utc()));
    };
    // The space-separated form is exactly `yyyy-MM-dd HH:mm:ss`.
    let (clock, offset) = match rest.find(['Z', '+', '-']) {
        Some(i) if sep == "T" => (&rest[..i], &rest[i..]),
        _ => (rest, ""),
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((a, b)) if sep == "T" => (a, Some(b)),
        Some(_) => return None,
        None => (clock, None),
    };
    let mut f = hms.split(':');
    let h = digits(f.next()?, 2)?;
    let m = match f.next() {
        Some(m) => digits(m, 2)?,
        None => return None,
    };
    let sec = match f.next() {
        Some(x) => digits(x, 2)?,
        None if sep == "T" && frac.is_none() => 0,
        None => return None,
    };
    if f.next().is_some() {
        return None;
    }
    let nanos = match frac {
        None => 0,
        Some(fr) if !fr.is_empty() && fr.len() <= 9 && fr.bytes().all(|b| b.is_ascii_digit()) => {
            fr.parse::<u32>().ok()? * 10u32.pow(9 - fr.len() as u32)
        }
        Some(_) => return None,
    };
    let t = Time::from_hms_nano(h as u8, m as u8, sec as u8, nanos).ok()?;
    let off = match offset {
        "" | "Z" if sep == "T" || offset.is_empty() => UtcOffset::UTC,
        "" | "Z" => return None,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let body = o[1..].replace(':', "");
            let hh = digits(body.get(..2)?, 2)? as i8;
            let mm = digits(body.get(2..)?, 2)? as i8;
            UtcOffset::from_hms(sign * hh, sign * mm, 0).ok()?
        }
    };
    Some(to_millis(
        PrimitiveDateTime::new(date, t).assume_offset(off),
    ))
}

/// The instant a string denotes if dynamic date detection would map it as a date.
pub fn detect(s: &str) -> Option<Millis> {
    if s.len() < 10 || !s.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    parse_iso(s, false)
}

/// Which end of a rounded range bound is meant (`lte`/`gt` round up, `gte`/`lt` round down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// Start of the unit.
    Down,
    /// Last millisecond of the unit.
    Up,
}

fn unit_of(c: char) -> Option<char> {
    matches!(c, 'y' | 'M' | 'w' | 'd' | 'h' | 'H' | 'm' | 's').then_some(c)
}

/// `dt` moved by `n` units; `None` when the result is outside the representable years.
fn add(dt: OffsetDateTime, n: i64, unit: char) -> Option<OffsetDateTime> {
    let months = |per: i64| {
        let total = (dt.year() as i64)
            .checked_mul(12)?
            .checked_add(dt.month() as i64 - 1)?
            .checked_add(n.checked_mul(per)?)?;
        let (y, m) = (
            i32::try_from(total.div_euclid(12)).ok()?,
            total.rem_euclid(12) + 1,
        );
        let month = Month::try_from(m as u8).ok()?;
        let day = dt.day().min(time::util::days_in_month(month, y));
        dt.replace_day(1)
            .ok()?
            .replace_year(y)
            .ok()?
            .replace_month(month)
            .ok()?
            .replace_day(day)
            .ok()
    };
    let seconds = |per: i64| {
        let d = time::Duration::seconds(n.checked_mul(per)?);
        dt.checked_add(d)
    };
    match unit {
        'y' => months(12),
        'M' => months(1),
        'w' => seconds(7 * 86_400),
        'd' => seconds(86_400),
        'h' | 'H' => seconds(3_600),
        'm' => seconds(60),
        's' => seconds(1),
        _ => None,
    }
}

fn round(dt: OffsetDateTime, unit: char, r: Rounding) -> Option<OffsetDateTime> {
    let start = match unit {
        'y' => dt.replace_date(Date::from_calendar_date(dt.year(), Month::January, 1).ok()?),
        'M' => dt.replace_day(1).ok()?,
        'w' => dt.checked_sub(time::Duration::days(
            dt.weekday().number_days_from_monday() as i64
        ))?,
        _ => dt,
    };
    let start = match unit {
        'y' | 'M' | 'w' | 'd' => start.replace_time(Time::MIDNIGHT),
        'h' | 'H' => start
            .replace_minute(0)
            .ok()?
            .replace_second(0)
            .ok()?
            .replace_nanosecond(0)
            .ok()?,
        'm' => start.replace_second(0).ok()?.replace_nanosecond(0).ok()?,
        's' => start.replace_nanosecond(0).ok()?,
        _ => return None,
    };
    match r {
        Rounding::Down => Some(start),
        Rounding::Up => add(start, 1, unit)?.checked_sub(time::Duration::milliseconds(1)),
    }
}

/// Parses a range bound: a date, `now`, or either followed by `||` (after a date) and math
/// (`+1d`, `-2h`, `/d`). `None` when it is not a date expression.
pub fn parse_bound(s: &str, now: OffsetDateTime, r: Rounding) -> Option<Millis> {
    let (anchor, math) = if let Some(rest) = s.strip_prefix("now") {
        (now, rest)
    } else if let Some((d, m)) = s.split_once("||") {
        (
            OffsetDateTime::from_unix_timestamp_nanos(parse_iso(d, true)? as i128 * 1_000_000)
                .ok()?,
            m,
        )
    } else {
        return parse_iso(s, true);
    };
    let mut dt = anchor;
    let mut chars = math.chars().peekable();
    while let Some(op) = chars.next() {
        match op {
            '+' | '-' => {
                let mut n = String::new();
                while let Some(c) = chars.peek().filter(|c| c.is_ascii_digit()) {
                    n.push(*c);
                    chars.next();
                }
                let n: i64 = if n.is_empty() { 1 } else { n.parse().ok()? };
                let unit = unit_of(chars.next()?)?;
                dt = add(dt, if op == '-' { -n } else { n }, unit)?;
            }
            '/' => dt = round(dt, unit_of(chars.next()?)?, r)?,
            _ => return None,
        }
    }
    Some(to_millis(dt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn detection_follows_the_dynamic_formats() {
        assert_eq!(detect("1970-01-02"), Some(86_400_000));
        assert_eq!(detect("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(detect("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(detect("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(detect("1970-01-01 00:01:00"), Some(60_000));
        assert_eq!(detect("1970-01-01T00:00"), Some(0));
        // DSS versions, plain words, partial dates and impossible dates are not dates.
        assert_eq!(detect("2019-01-01T120000.000000Z"), None);
        assert_eq!(detect("2019"), None);
        assert_eq!(detect("2019-02-30"), None);
        assert_eq!(detect("hello world"), None);
        assert_eq!(detect("1970-01-01 00:01"), None);
    }

    #[test]
    fn bounds_accept_partial_dates_and_math() {
        let now = datetime!(2020-03-15 10:30:00 UTC);
        let ms = |dt: OffsetDateTime| to_millis(dt);
        assert_eq!(
            parse_bound("2019", now, Rounding::Down),
            Some(ms(datetime!(2019-01-01 0:00 UTC)))
        );
        assert_eq!(parse_bound("now", now, Rounding::Down), Some(ms(now)));
        assert_eq!(
            parse_bound("now-1d", now, Rounding::Down),
            Some(ms(datetime!(2020-03-14 10:30 UTC)))
        );
        assert_eq!(
            parse_bound("now/d", now, Rounding::Down),
            Some(ms(datetime!(2020-03-15 0:00 UTC)))
        );
        assert_eq!(
            parse_bound("now/d", now, Rounding::Up),
            Some(ms(datetime!(2020-03-15 23:59:59.999 UTC)))
        );
        assert_eq!(
            parse_bound("2020-01-31||+1M", now, Rounding::Down),
            Some(ms(datetime!(2020-02-29 0:00 UTC)))
        );
        assert_eq!(parse_bound("yesterday", now, Rounding::Down), None);
        // Math beyond the representable years is not a date (it used to panic).
        for huge in [
            "now+99999999d",
            "now-99999999d",
            "now+9223372036854775807d",
            "now+9223372036854775807y",
            "now-9223372036854775807M",
            "now+99999999999w/w",
            "2020-01-01||+9999999y",
        ] {
            assert_eq!(parse_bound(huge, now, Rounding::Up), None, "{huge}");
        }
        assert!(parse_bound("now+1000y/y", now, Rounding::Up).is_some());
        assert_eq!(parse_bound("now+1x", now, Rounding::Down), None);
    }
}

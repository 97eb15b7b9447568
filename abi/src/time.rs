//! Calendar arithmetic for EVE timestamps, shared by the workers' events and the events the
//! supervisor itself writes (drift), so there is one format: `YYYY-MM-DDTHH:MM:SS.ffffff+0000`.

/// (year, month, day) of a day counted from 1970-01-01 (negative before it), proleptic
/// Gregorian (Howard Hinnant's algorithm).
pub fn civil_date(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The EVE timestamp of `unix_ns` (UTC, microseconds).
pub fn eve_timestamp(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let micros = (unix_ns % 1_000_000_000) / 1000;
    let sod = secs % 86_400;
    let (year, month, day) = civil_date((secs / 86_400) as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}+0000",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_as_the_calendar_says() {
        assert_eq!(eve_timestamp(0), "1970-01-01T00:00:00.000000+0000");
        // 2024-02-29T12:34:56.789012Z (a leap day).
        assert_eq!(
            eve_timestamp(1_709_210_096_789_012_345),
            "2024-02-29T12:34:56.789012+0000"
        );
        assert_eq!(civil_date(-1), (1969, 12, 31));
    }
}

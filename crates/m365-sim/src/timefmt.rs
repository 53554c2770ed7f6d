//! Timestamp formats exactly as the real services write them, plus lenient parsing of Graph
//! timestamps found in recorded payloads. Never panics on odd input (recorded payloads contain
//! malformed dates on purpose).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// Graph `dateTimeOffset` as Teams writes it: `2022-11-05T13:06:30.582Z`.
pub(crate) fn graph(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(&format)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// `innerError.date` as real Graph errors carry it: no fraction, no zone (`2023-02-20T05:06:48`).
pub(crate) fn inner_error_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    t.format(&format)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Entra token-endpoint `timestamp`: `2020-07-06 22:31:52Z`.
pub(crate) fn aad_timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    t.format(&format)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Entra's long form inside descriptions: `2020-02-26T21:52:54.2810613Z`.
pub(crate) fn aad_long(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z");
    t.format(&format)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// RFC 3339 for the control API and the request log.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Parses a Graph timestamp; `None` for malformed values (e.g. `2021-03-1706:47:05.123Z`).
pub(crate) fn parse(value: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(value, &Rfc3339).ok()
}

/// Sort key of a timestamp in nanoseconds since the epoch.
pub(crate) fn nanos(t: OffsetDateTime) -> i128 {
    t.unix_timestamp_nanos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_match_the_recorded_payloads() {
        let t = datetime!(2023-02-20 05:06:48.5 UTC);
        assert_eq!(graph(t), "2023-02-20T05:06:48.500Z");
        assert_eq!(inner_error_date(t), "2023-02-20T05:06:48");
        assert_eq!(aad_timestamp(t), "2023-02-20 05:06:48Z");
        assert_eq!(aad_long(t), "2023-02-20T05:06:48.5000000Z");
    }

    #[test]
    fn malformed_recorded_dates_do_not_parse() {
        assert!(parse("2021-03-1706:47:05.123Z").is_none());
        assert!(parse("2020-12-04T23:10:28.51Z").is_some());
    }
}

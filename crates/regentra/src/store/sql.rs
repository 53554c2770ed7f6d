//! Conversions between domain values and the portable column types every repository module
//! uses: times as BIGINT unix milliseconds, flags as BIGINT 0/1, validated strings as TEXT.
//!
//! A stored value that does not parse back (e.g. an unknown status written by a newer version)
//! becomes `StoreError::Database(sqlx::Error::Decode(..))`, never a panic.

use std::str::FromStr;

use time::OffsetDateTime;

use super::StoreError;
use crate::tickets::ValidationError;

/// A time as unix milliseconds (sub-millisecond precision is dropped).
pub fn to_ms(time: OffsetDateTime) -> i64 {
    let millis = time.unix_timestamp_nanos() / 1_000_000;
    // Dates beyond ±292 million years do not occur; saturate rather than wrap if one did.
    i64::try_from(millis).unwrap_or(if millis < 0 { i64::MIN } else { i64::MAX })
}

/// An optional time as optional unix milliseconds.
pub fn opt_to_ms(time: Option<OffsetDateTime>) -> Option<i64> {
    time.map(to_ms)
}

/// Unix milliseconds back to a UTC time.
pub fn from_ms(millis: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .map_err(|err| decode_error(format!("timestamp {millis} ms is out of range: {err}")))
}

/// Optional unix milliseconds back to an optional UTC time.
pub fn opt_from_ms(millis: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    millis.map(from_ms).transpose()
}

/// `now` truncated to what the database keeps (milliseconds), for comparisons in tests and for
/// returning exactly what a later read would return.
pub fn truncate_to_ms(time: OffsetDateTime) -> OffsetDateTime {
    from_ms(to_ms(time)).unwrap_or(time)
}

/// A flag column (BIGINT 0/1).
pub fn to_flag(value: bool) -> i64 {
    i64::from(value)
}

/// A flag column back to bool (any non-zero is true).
pub fn from_flag(value: i64) -> bool {
    value != 0
}

/// Parses a stored string with the domain parser (`TicketId::parse`, `TenantId::parse` …),
/// turning a failure into a decode error.
pub fn parse_stored<T>(
    raw: &str,
    parse: impl FnOnce(&str) -> Result<T, ValidationError>,
) -> Result<T, StoreError> {
    parse(raw).map_err(|err| decode_error(format!("stored value {raw:?} is invalid: {err}")))
}

/// Like [`parse_stored`] for nullable columns.
pub fn parse_stored_opt<T>(
    raw: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, ValidationError>,
) -> Result<Option<T>, StoreError> {
    raw.map(|raw| parse_stored(raw, parse)).transpose()
}

/// Parses a stored enum (status, kind …) through its `FromStr`.
pub fn parse_enum<T: FromStr<Err = ValidationError>>(raw: &str) -> Result<T, StoreError> {
    parse_stored(raw, str::parse::<T>)
}

/// A `StoreError` for a stored value that cannot be read.
pub fn decode_error(message: String) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(message.into()))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn times_round_trip_at_millisecond_precision() {
        let time = datetime!(2026-03-10 12:34:56.789_999 UTC);
        assert_eq!(to_ms(time), 1_773_146_096_789);
        assert_eq!(
            from_ms(to_ms(time)).unwrap(),
            datetime!(2026-03-10 12:34:56.789 UTC)
        );
    }

    #[test]
    fn times_before_1970_work() {
        let time = datetime!(1969-12-31 23:59:59 UTC);
        assert_eq!(to_ms(time), -1000);
        assert_eq!(from_ms(-1000).unwrap(), time);
    }

    #[test]
    fn unreadable_stored_value_is_a_decode_error() {
        let err = parse_enum::<crate::tickets::TicketStatus>("archived").unwrap_err();
        assert!(matches!(err, StoreError::Database(sqlx::Error::Decode(_))));
        assert!(err.to_string().contains("archived"));
    }
}

//! OData query options as the Teams endpoints honour them (`graph-facts.md` §1–§2):
//! `$top` ≤ 50, `$orderby` descending only, `$filter` on dates only with the matching `$orderby`,
//! and opaque `$skiptoken`s that must come back byte for byte.
//!
//! The skiptoken is checked against the RAW query string: a client that decodes or re-encodes
//! it (the `%3d%3d` bug from msgraph-beta-sdk-dotnet#151) gets the 400 the real service gives.

use base64::Engine as _;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use crate::odata::GraphError;

pub(crate) const MAX_TOP: u32 = 50;

/// Characters escaped in query values of the nextLinks we build. `:` `@` `'` stay as Graph leaves them.
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'&')
    .add(b'+')
    .add(b'=')
    .add(b'%')
    .add(b'<')
    .add(b'>');

#[derive(Debug, Default, Clone)]
pub(crate) struct ODataQuery {
    pub top: Option<u32>,
    pub orderby: Option<String>,
    pub filter: Option<String>,
    pub expand: Option<String>,
    /// Exactly as it appeared in the URL (still percent-encoded).
    pub skiptoken_raw: Option<String>,
}

impl ODataQuery {
    pub fn parse(raw_query: Option<&str>) -> Result<ODataQuery, GraphError> {
        let mut query = ODataQuery::default();
        let Some(raw) = raw_query else {
            return Ok(query);
        };
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(raw_key).to_ascii_lowercase();
            let key = key.strip_prefix('$').unwrap_or(&key).to_owned();
            let value = decode(raw_value);
            match key.as_str() {
                "top" => {
                    let top: u32 = value.trim().parse().map_err(|_| {
                        GraphError::bad_request(format!("Invalid value '{value}' for $top query option found. The $top query option requires a non-negative integer value."))
                    })?;
                    if top == 0 || top > MAX_TOP {
                        return Err(GraphError::bad_request(format!(
                            "Invalid page size specified: '{top}'. Must be between 1 and {MAX_TOP} inclusive."
                        )));
                    }
                    query.top = Some(top);
                }
                "orderby" => query.orderby = Some(value),
                "filter" => query.filter = Some(value),
                "expand" => query.expand = Some(value),
                "skiptoken" => query.skiptoken_raw = Some(raw_value.to_owned()),
                _ => {}
            }
        }
        Ok(query)
    }

    /// Expanded navigation properties, lower-cased.
    pub fn expands(&self) -> Vec<String> {
        self.expand
            .as_deref()
            .map(|e| {
                e.split(',')
                    .map(|p| p.trim().to_ascii_lowercase())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The query string of the next page: the caller's options repeated plus the new skiptoken.
    pub fn next_query(&self, skiptoken: &str) -> String {
        let mut parts = Vec::new();
        if let Some(expand) = &self.expand {
            parts.push(format!(
                "$expand={}",
                utf8_percent_encode(expand, QUERY_VALUE)
            ));
        }
        if let Some(top) = self.top {
            parts.push(format!("$top={top}"));
        }
        if let Some(orderby) = &self.orderby {
            parts.push(format!(
                "$orderby={}",
                utf8_percent_encode(orderby, QUERY_VALUE)
            ));
        }
        if let Some(filter) = &self.filter {
            parts.push(format!(
                "$filter={}",
                utf8_percent_encode(filter, QUERY_VALUE)
            ));
        }
        parts.push(format!("$skiptoken={skiptoken}"));
        parts.join("&")
    }
}

fn decode(raw: &str) -> String {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// Where the next page starts: after the item with this sort key and tiebreak.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PageCursor {
    /// Sort key of the last item served (nanoseconds; `None` for missing/malformed dates).
    #[serde(rename = "k")]
    pub key: Option<String>,
    /// Tiebreak of the last item served (message id or chat sequence).
    #[serde(rename = "i")]
    pub tiebreak: String,
    /// Padding so the base64 ends in `==`, like the real tokens.
    #[serde(rename = "p", default)]
    pub padding: String,
}

impl PageCursor {
    pub fn new(key: Option<i128>, tiebreak: String) -> Self {
        PageCursor {
            key: key.map(|k| k.to_string()),
            tiebreak,
            padding: String::new(),
        }
    }

    pub fn sort_key(&self) -> Option<i128> {
        self.key.as_deref().and_then(|k| k.parse().ok())
    }

    /// The token as it appears in a nextLink: base64 with `==`, percent-encoded as `%3d%3d`.
    pub fn encode(&self) -> String {
        let mut cursor = self.clone();
        cursor.padding.clear();
        let mut json = serde_json::to_string(&cursor).unwrap_or_default();
        while json.len() % 3 != 1 {
            cursor.padding.push('x');
            json = serde_json::to_string(&cursor).unwrap_or_default();
        }
        let token = base64::engine::general_purpose::STANDARD.encode(json);
        token
            .replace('+', "%2b")
            .replace('/', "%2f")
            .replace('=', "%3d")
    }

    /// Decodes a raw skiptoken; anything not byte-identical to what we issued is rejected.
    pub fn decode(raw: &str) -> Result<PageCursor, GraphError> {
        let invalid = || GraphError::bad_request("The provided skip token is not valid.");
        let token = raw
            .replace("%2b", "+")
            .replace("%2f", "/")
            .replace("%3d", "=");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(token.as_bytes())
            .map_err(|_| invalid())?;
        let cursor: PageCursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if cursor.encode() != raw {
            return Err(invalid());
        }
        Ok(cursor)
    }
}

/// One `prop op value` clause of a messages `$filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DateClause {
    pub property: String,
    pub operator: String,
    pub value: i128,
}

/// Parses `lastModifiedDateTime gt X and lastModifiedDateTime lt Y`.
/// `Ok(None)` when the filter is not about dates at all (then Graph ignores it).
pub(crate) fn parse_date_filter(filter: &str) -> Result<Option<Vec<DateClause>>, GraphError> {
    let invalid = || GraphError::bad_request("Invalid $filter query.");
    let mut clauses = Vec::new();
    let lower = filter.to_ascii_lowercase();
    let mut rest = filter;
    let mut rest_lower = lower.as_str();
    loop {
        let (clause, next, next_lower) = match rest_lower.find(" and ") {
            Some(at) => (&rest[..at], &rest[at + 5..], &rest_lower[at + 5..]),
            None => (rest, "", ""),
        };
        let tokens: Vec<&str> = clause.split_whitespace().collect();
        let [property, operator, value] = tokens.as_slice() else {
            return Err(invalid());
        };
        let property = property.to_ascii_lowercase();
        if property != "lastmodifieddatetime" && property != "createddatetime" {
            return Ok(None);
        }
        let value = value.trim_matches('\'');
        let parsed = crate::timefmt::parse(value).ok_or_else(invalid)?;
        clauses.push(DateClause {
            property,
            operator: operator.to_ascii_lowercase(),
            value: crate::timefmt::nanos(parsed),
        });
        if next.is_empty() {
            break;
        }
        rest = next;
        rest_lower = next_lower;
    }
    Ok(Some(clauses))
}

/// The OData name of a comparison operator, as Teams words its refusal.
pub(crate) fn operation_kind(operator: &str) -> &'static str {
    match operator {
        "gt" => "GreaterThan",
        "lt" => "LessThan",
        "ge" => "GreaterThanOrEqual",
        "le" => "LessThanOrEqual",
        "eq" => "Equal",
        "ne" => "NotEqual",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skiptoken_round_trips_and_ends_in_encoded_padding() {
        let cursor = PageCursor::new(Some(1_700_000_000_000_000_000), "1700000000000".into());
        let raw = cursor.encode();
        assert!(raw.ends_with("%3d%3d"), "{raw}");
        let decoded = PageCursor::decode(&raw).ok().map(|c| c.tiebreak);
        assert_eq!(decoded.as_deref(), Some("1700000000000"));
    }

    #[test]
    fn decoded_or_reencoded_skiptoken_is_rejected() {
        let raw = PageCursor::new(None, "x".into()).encode();
        assert!(PageCursor::decode(&raw.replace("%3d", "=")).is_err());
        assert!(PageCursor::decode(&raw.replace('%', "%25")).is_err());
        assert!(PageCursor::decode(&raw.replace("%3d", "%3D")).is_err());
    }

    #[test]
    fn top_above_fifty_is_the_real_400() {
        let error = ODataQuery::parse(Some("$top=51")).err().map(|e| e.message);
        assert_eq!(
            error.as_deref(),
            Some("Invalid page size specified: '51'. Must be between 1 and 50 inclusive.")
        );
    }

    #[test]
    fn date_filter_parses_two_clauses_and_ignores_other_properties() {
        let clauses = parse_date_filter("lastModifiedDateTime gt 2022-09-22T00:00:00.000Z and lastModifiedDateTime lt 2022-09-24T00:00:00.000Z")
            .ok()
            .flatten()
            .unwrap_or_default();
        assert_eq!(clauses.len(), 2);
        assert_eq!(clauses[1].operator, "lt");
        assert!(matches!(parse_date_filter("chatType eq 'group'"), Ok(None)));
    }
}

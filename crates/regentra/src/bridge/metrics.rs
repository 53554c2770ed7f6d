//! Poller metrics in the Prometheus text exposition format (version 0.0.4), served at
//! `GET /metrics`: cycles by result, messages ingested and skipped by reason, tickets, edits,
//! deletes, Graph requests and throttles, cycle duration, last successful cycle per account.
//!
//! Counters live in this process (each `serve` exposes its own). The exposition is written by
//! hand — a few counters do not need a metrics framework — with label values escaped as the
//! format requires. Labels never carry personal data: accounts appear by connection id only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use time::OffsetDateTime;

use crate::bridge::ingest::SkipReason;

/// Upper bounds (seconds) of the cycle duration histogram buckets.
const DURATION_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0];

/// One finished cycle as the metrics see it.
#[derive(Debug, Clone)]
pub struct CycleObservation<'a> {
    pub account_id: &'a str,
    /// `ok`, `partial`, `failed`, `reconnect_required` or `busy`.
    pub result: &'a str,
    pub finished_at: OffsetDateTime,
    pub duration_seconds: f64,
    pub messages_ingested: u64,
    pub tickets_created: u64,
    pub edits: u64,
    pub deletes: u64,
    pub errors: u64,
    pub graph_requests: u64,
    pub throttled: u64,
    pub skipped: &'a BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
struct Counters {
    cycles: BTreeMap<String, u64>,
    messages_ingested: u64,
    tickets_created: u64,
    edits: u64,
    deletes: u64,
    errors: u64,
    skipped: BTreeMap<String, u64>,
    graph_requests: u64,
    throttled: u64,
    duration_buckets: [u64; DURATION_BUCKETS.len()],
    duration_count: u64,
    duration_sum: f64,
    last_success: BTreeMap<String, i64>,
}

/// The poller's counters. Share one per process (`Arc<PollMetrics>`).
#[derive(Debug, Default)]
pub struct PollMetrics {
    counters: Mutex<Counters>,
}

impl PollMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a finished cycle.
    pub fn observe(&self, cycle: &CycleObservation<'_>) {
        let mut c = self.lock();
        *c.cycles.entry(cycle.result.to_owned()).or_default() += 1;
        c.messages_ingested += cycle.messages_ingested;
        c.tickets_created += cycle.tickets_created;
        c.edits += cycle.edits;
        c.deletes += cycle.deletes;
        c.errors += cycle.errors;
        c.graph_requests += cycle.graph_requests;
        c.throttled += cycle.throttled;
        for (reason, count) in cycle.skipped {
            *c.skipped.entry(reason.clone()).or_default() += count;
        }
        if cycle.result != "busy" {
            for (index, bound) in DURATION_BUCKETS.iter().enumerate() {
                if cycle.duration_seconds <= *bound {
                    c.duration_buckets[index] += 1;
                }
            }
            c.duration_count += 1;
            c.duration_sum += cycle.duration_seconds;
        }
        if cycle.result == "ok" {
            c.last_success.insert(
                cycle.account_id.to_owned(),
                cycle.finished_at.unix_timestamp(),
            );
        }
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let c = self.lock();
        let mut out = String::new();
        counter_family(
            &mut out,
            "regentra_poll_cycles_total",
            "Teams poll cycles by result (ok, partial, failed, reconnect_required, busy).",
            "result",
            &c.cycles,
            &["ok", "partial", "failed", "reconnect_required", "busy"],
        );
        let simple = [
            (
                "regentra_poll_messages_ingested_total",
                "Teams messages stored as new ticket entries.",
                c.messages_ingested,
            ),
            (
                "regentra_poll_tickets_created_total",
                "Tickets opened by Teams messages (new and follow-up).",
                c.tickets_created,
            ),
            (
                "regentra_poll_edits_total",
                "Ticket entries updated by an edit in Teams.",
                c.edits,
            ),
            (
                "regentra_poll_deletes_total",
                "Ticket entries marked deleted by a deletion in Teams.",
                c.deletes,
            ),
            (
                "regentra_poll_errors_total",
                "Chats (or chat lists) that could not be read completely in a cycle.",
                c.errors,
            ),
            (
                "regentra_poll_graph_requests_total",
                "HTTP requests the poller sent to Microsoft Graph (retries included).",
                c.graph_requests,
            ),
            (
                "regentra_poll_graph_throttled_total",
                "Graph answers to the poller that were 429 or 503.",
                c.throttled,
            ),
        ];
        for (name, help, value) in simple {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let reasons: Vec<&str> = SkipReason::ALL.iter().map(|r| r.as_str()).collect();
        counter_family(
            &mut out,
            "regentra_poll_messages_skipped_total",
            "Teams messages that created no entry, by reason.",
            "reason",
            &c.skipped,
            &reasons,
        );
        let name = "regentra_poll_cycle_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Duration of Teams poll cycles.\n# TYPE {name} histogram"
        );
        for (bound, count) in DURATION_BUCKETS.iter().zip(c.duration_buckets.iter()) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", c.duration_count);
        let _ = writeln!(out, "{name}_sum {}", c.duration_sum);
        let _ = writeln!(out, "{name}_count {}", c.duration_count);
        let name = "regentra_poll_last_success_timestamp_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Unix time of the last fully successful poll cycle, per account.\n# TYPE {name} gauge"
        );
        for (account, at) in &c.last_success {
            let _ = writeln!(out, "{name}{{account=\"{}\"}} {at}", escape_label(account));
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        // Counters stay consistent even if a panic interrupted an update; keep serving them.
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A labelled counter family; `always` labels are printed even at zero so dashboards see them.
fn counter_family(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: &BTreeMap<String, u64>,
    always: &[&str],
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    let mut all: BTreeMap<&str, u64> = always.iter().map(|k| (*k, 0)).collect();
    for (key, value) in values {
        all.insert(key.as_str(), *value);
    }
    for (key, value) in all {
        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {value}", escape_label(key));
    }
}

/// Escapes a label value: backslash, double quote and line feed.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_cycles_appear_in_the_exposition() {
        let metrics = PollMetrics::new();
        let skipped = BTreeMap::from([("bot_or_app".to_owned(), 2)]);
        metrics.observe(&CycleObservation {
            account_id: "acc\"1",
            result: "ok",
            finished_at: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            duration_seconds: 0.3,
            messages_ingested: 5,
            tickets_created: 1,
            edits: 0,
            deletes: 0,
            errors: 0,
            graph_requests: 3,
            throttled: 1,
            skipped: &skipped,
        });
        let text = metrics.render();
        assert!(
            text.contains("regentra_poll_cycles_total{result=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("regentra_poll_cycles_total{result=\"failed\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("regentra_poll_messages_ingested_total 5"),
            "{text}"
        );
        assert!(text.contains("regentra_poll_messages_skipped_total{reason=\"bot_or_app\"} 2"));
        assert!(text.contains("regentra_poll_messages_skipped_total{reason=\"own_tenant\"} 0"));
        assert!(text.contains("regentra_poll_graph_requests_total 3"));
        assert!(text.contains("regentra_poll_graph_throttled_total 1"));
        assert!(text.contains("regentra_poll_cycle_duration_seconds_bucket{le=\"0.25\"} 0"));
        assert!(text.contains("regentra_poll_cycle_duration_seconds_bucket{le=\"0.5\"} 1"));
        assert!(text.contains("regentra_poll_cycle_duration_seconds_count 1"));
        assert!(text.contains(
            "regentra_poll_last_success_timestamp_seconds{account=\"acc\\\"1\"} 1700000000"
        ));
    }
}

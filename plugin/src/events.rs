//! The `Events:` section of `describe` and `sets NAME`, in the layout of
//! `kubectl describe`. Pure: the Events and the clock are inputs.

use std::fmt::Write as _;

use k8s_openapi::api::core::v1::Event;

use crate::summary;
use crate::table;
use crate::time::{self, Clock};

/// How many recent Events to show.
pub const EVENTS: usize = 10;

fn event_time(e: &Event) -> Option<jiff::Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The most recent Events, oldest first.
pub fn recent(mut events: Vec<Event>) -> Vec<Event> {
    events.sort_by_key(event_time);
    let skip = events.len().saturating_sub(EVENTS);
    events.split_off(skip)
}

/// The `Events:` section: a table of the events, `<none>`, or why they could not be listed.
pub fn section(s: &mut String, events: &Result<Vec<Event>, String>, clock: &Clock) {
    s.push_str("\nEvents:\n");
    match events {
        Ok(events) if events.is_empty() => s.push_str("  <none>\n"),
        Ok(events) => {
            let rows = events
                .iter()
                .map(|e| {
                    vec![
                        e.type_.clone().unwrap_or_default(),
                        e.reason.clone().unwrap_or_default(),
                        event_time(e)
                            .map(|t| time::age(clock.now.duration_since(t)))
                            .unwrap_or_else(|| summary::NONE.to_owned()),
                        e.source
                            .as_ref()
                            .and_then(|src| src.component.clone())
                            .or_else(|| e.reporting_component.clone())
                            .unwrap_or_default(),
                        e.message.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            for line in
                table::render(&["TYPE", "REASON", "AGE", "FROM", "MESSAGE"], rows, true).lines()
            {
                let _ = writeln!(s, "  {line}");
            }
        }
        Err(e) => {
            let _ = writeln!(s, "  <cannot list Events: {e}>");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(minute: u32) -> Event {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("e{minute}")},
            "involvedObject": {},
            "lastTimestamp": format!("2026-11-21T11:{minute:02}:00Z"),
        }))
        .unwrap()
    }

    #[test]
    fn the_ten_most_recent_oldest_first() {
        let kept = recent((0..12).rev().map(event).collect());
        let names: Vec<_> = kept
            .iter()
            .map(|e| e.metadata.name.clone().unwrap())
            .collect();
        let want: Vec<_> = (2..12).map(|m| format!("e{m}")).collect();
        assert_eq!(names, want);
    }
}

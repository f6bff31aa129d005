//! A schedule's ticks: a cron expression (5 fields, minute to day-of-week, or 6 with seconds
//! first) read by `croner`, in an IANA time zone from `chrono-tz`. Daylight-saving changes are
//! handled as croner handles them: a wall-clock time that a spring-forward skips does not fire,
//! and one that a fall-back repeats fires once.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// A parsed schedule: when it ticks.
#[derive(Debug, Clone)]
pub struct Ticks {
    cron: Cron,
    zone: Tz,
}

impl Ticks {
    /// Parses `cron` and `timezone` (UTC when absent). `Err((field, why))` names the bad one.
    pub fn parse(cron: &str, timezone: Option<&str>) -> Result<Ticks, (&'static str, String)> {
        let fields = cron.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err((
                "cron",
                format!("expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), found {fields}"),
            ));
        }
        let parser =
            CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build();
        let cron = parser.parse(cron).map_err(|e| ("cron", e.to_string()))?;
        let zone = match timezone {
            None => Tz::UTC,
            Some(name) => name
                .parse::<Tz>()
                .map_err(|_| ("timezone", format!("{name:?} is not an IANA time zone name")))?,
        };
        let ticks = Ticks { cron, zone };
        // An expression that never matches (the 31st of February) is refused now.
        if ticks.next_after(0).is_none() {
            return Err(("cron", "it never fires".to_owned()));
        }
        Ok(ticks)
    }

    /// The first tick after `after` (epoch milliseconds), if there is one.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let from = self.zone.from_utc_datetime(&utc(after)?.naive_utc());
        let next = self.cron.find_next_occurrence(&from, false).ok()?;
        Some(next.timestamp_millis())
    }

    /// The last tick at or before `at` (epoch milliseconds), if there is one.
    pub fn latest_at(&self, at: i64) -> Option<i64> {
        let from = self.zone.from_utc_datetime(&utc(at)?.naive_utc());
        let previous = self.cron.find_previous_occurrence(&from, true).ok()?;
        Some(previous.timestamp_millis())
    }
}

fn utc(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).expect("a time").timestamp_millis()
    }

    #[test]
    fn five_fields_tick_on_minutes_and_six_on_seconds() {
        let hourly = Ticks::parse("30 * * * *", None).expect("parses");
        assert_eq!(hourly.next_after(at("2026-03-01T10:31:00Z")), Some(at("2026-03-01T11:30:00Z")));
        let every2s = Ticks::parse("*/2 * * * * *", None).expect("parses");
        assert_eq!(
            every2s.next_after(at("2026-03-01T10:00:01Z")),
            Some(at("2026-03-01T10:00:02Z"))
        );
        assert_eq!(
            every2s.latest_at(at("2026-03-01T10:00:05.500Z")),
            Some(at("2026-03-01T10:00:04Z"))
        );
    }

    #[test]
    fn a_time_zone_moves_the_ticks_and_daylight_saving_is_followed() {
        let nine = Ticks::parse("0 9 * * *", Some("Europe/Berlin")).expect("parses");
        // CET (UTC+1) in winter, CEST (UTC+2) after the change on 29 March 2026.
        assert_eq!(nine.next_after(at("2026-03-27T12:00:00Z")), Some(at("2026-03-28T08:00:00Z")));
        assert_eq!(nine.next_after(at("2026-03-28T12:00:00Z")), Some(at("2026-03-29T07:00:00Z")));
        // 02:30 does not exist on the day clocks spring forward: that day has no tick.
        let skipped = Ticks::parse("30 2 * * *", Some("Europe/Berlin")).expect("parses");
        let next = skipped.next_after(at("2026-03-28T12:00:00Z")).expect("a tick");
        assert_ne!(next, at("2026-03-29T01:30:00Z"));
    }

    #[test]
    fn bad_expressions_and_zones_name_their_field() {
        assert_eq!(Ticks::parse("* * *", None).expect_err("refused").0, "cron");
        assert_eq!(Ticks::parse("61 * * * *", None).expect_err("refused").0, "cron");
        assert_eq!(Ticks::parse("0 0 31 2 *", None).expect_err("refused").0, "cron");
        let (field, why) = Ticks::parse("0 * * * *", Some("Mars/Olympus")).expect_err("refused");
        assert_eq!(
            (field, why.as_str()),
            ("timezone", r#""Mars/Olympus" is not an IANA time zone name"#)
        );
    }
}

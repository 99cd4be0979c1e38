//! Cron schedules: parsing, next fire times in a named time zone, and the
//! catch-up rule after a restart. Pure functions; the loop that sleeps and
//! fires is in `triggers.rs`.
//!
//! Expressions are the usual five fields (`minute hour day-of-month month
//! day-of-week`), or six with seconds first (`second minute ...`), or an
//! alias (`@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
//! `@midnight`, `@hourly`), parsed by `croner`. When both day-of-month and
//! day-of-week are restricted, either matching is enough (as in Vixie cron).
//!
//! Times are evaluated on the wall clock of the schedule's zone (an IANA name
//! such as `Europe/Berlin`; default UTC). Across daylight-saving changes,
//! as Vixie cron and Python's `croniter` do:
//! * in the hour skipped in spring, the slots of a schedule whose hour
//!   field is restricted (`30 2 * * *`, `*/5 1-3 * * *`) fire once when the
//!   clock resumes (03:00, at the slot's own second); a schedule that runs
//!   every hour just goes on by the clock;
//! * in the hour repeated in autumn, a fixed-time slot (`30 1 * * *`) fires
//!   once, on the first pass, and interval slots (`*/15 * * * *`) fire on
//!   both passes, as the clock shows them. (croniter fires a fixed-time slot
//!   on both passes; we do not: a daily job runs once that night.)

use std::str::FromStr;

use chrono::offset::LocalResult;
use chrono::{DateTime, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed, valid schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    zone: Tz,
    /// The hour field matches every hour: such a schedule runs by the clock
    /// alone and has no slot to catch up after a gap.
    every_hour: bool,
}

/// What is wrong with a schedule, and in which of its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleError {
    /// The cron expression does not parse; the text says why.
    Cron(String),
    /// The time zone is not an IANA zone name.
    Timezone(String),
}

impl std::fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScheduleError::Cron(m) | ScheduleError::Timezone(m) => f.write_str(m),
        }
    }
}

const ALIASES: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

impl Schedule {
    /// Parse an expression and an optional zone name (UTC when `None`).
    pub fn parse(expression: &str, zone: Option<&str>) -> Result<Schedule, ScheduleError> {
        let cron = parse_cron(expression)?;
        let zone = match zone {
            None => Tz::UTC,
            Some(name) => Tz::from_str(name).map_err(|_| {
                ScheduleError::Timezone(format!(
                    "`{name}` is not a time zone; use an IANA name such as `Europe/Berlin`, `America/New_York` or `UTC`"
                ))
            })?,
        };
        let every_hour = (0..24).all(|h| cron.pattern.hour_match(h).unwrap_or(false));
        Ok(Schedule {
            cron,
            zone,
            every_hour,
        })
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// Whether seconds, minute and hour are single fixed values (`30 1 * * *`)
    /// rather than intervals or wildcards: such a slot fires once in an hour
    /// the clock repeats, where an interval slot fires on both passes.
    pub fn is_fixed_time(&self) -> bool {
        self.cron.determine_job_type() == croner::JobType::FixedTime
    }

    /// The first slot strictly after `after_ms` (epoch milliseconds), or
    /// `None` if the expression never matches again.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        // Slots are whole seconds: searching from the second that holds
        // `after_ms`, exclusively, never returns that second again.
        let after = after_ms.div_euclid(1000);
        let start = self.zone.timestamp_opt(after, 0).single()?;
        // croner walks the zone's clock: folds as described above; a
        // fixed-time slot in a gap comes back shifted (it does not match
        // the pattern on the clock), an interval slot in a gap is skipped.
        // Take its next real slot, then look for slots in a gap before it.
        let mut real = self.cron.find_next_occurrence(&start, false).ok()?;
        for _ in 0..8 {
            if self.cron.is_time_matching(&real).unwrap_or(false) {
                break;
            }
            real = self.cron.find_next_occurrence(&real, false).ok()?;
        }
        let real_clock = real.naive_local();
        let mut clock = start.naive_local();
        let gap_slots = if self.every_hour { 0 } else { 64 };
        for _ in 0..gap_slots {
            clock = match self.cron.find_next_occurrence(&clock, false) {
                Ok(next) if next < real_clock => next,
                _ => break,
            };
            if let LocalResult::None = self.zone.from_local_datetime(&clock) {
                // A slot the clock skips fires when the clock resumes (at
                // its own second), once for all the slots of that gap.
                let resumed = self.gap_end(clock)? + i64::from(clock.second());
                if resumed > after && resumed < real.timestamp() {
                    return Some(resumed * 1000);
                }
                break;
            }
        }
        Some(real.timestamp_millis())
    }

    /// The first instant (epoch seconds) whose wall clock is past `clock`,
    /// a time inside a gap: the instant the clock jumped.
    fn gap_end(&self, clock: NaiveDateTime) -> Option<i64> {
        let local_after = |t: i64| {
            self.zone
                .timestamp_opt(t, 0)
                .single()
                .is_some_and(|t| t.naive_local() > clock)
        };
        let guess = clock.and_utc().timestamp();
        let (mut lo, mut hi) = (guess - 2 * 86_400, guess + 2 * 86_400);
        if local_after(lo) || !local_after(hi) {
            return None;
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if local_after(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Some(hi)
    }

    /// The latest slot in `(after_ms, at_ms]`, if any: the one a restart
    /// missed most recently.
    pub fn latest_between(&self, after_ms: i64, at_ms: i64) -> Option<i64> {
        if at_ms <= after_ms {
            return None;
        }
        // Look back from `at_ms` in doubling steps for a window holding a
        // slot, then walk forward through it: a slot every second missed
        // for a day is found in a few steps, not 86 400.
        let mut back = 1_000i64;
        let mut slot = loop {
            let from = (at_ms - back).max(after_ms);
            if let Some(slot) = self.next_after(from).filter(|s| *s <= at_ms) {
                break slot;
            }
            if from == after_ms {
                return None;
            }
            back = back.saturating_mul(2);
        };
        while let Some(next) = self.next_after(slot).filter(|s| *s <= at_ms) {
            slot = next;
        }
        Some(slot)
    }

    /// A slot as RFC 3339 on the schedule's wall clock.
    pub fn format(&self, at_ms: i64) -> String {
        match self.zone.timestamp_millis_opt(at_ms).single() {
            Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            None => format_utc(at_ms),
        }
    }
}

/// Epoch milliseconds as RFC 3339 in UTC, to the millisecond.
pub fn format_utc(at_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(at_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn parse_cron(expression: &str) -> Result<Cron, ScheduleError> {
    let trimmed = expression.trim();
    let fields = trimmed.split_whitespace().count();
    if trimmed.starts_with('@') {
        if !ALIASES.iter().any(|a| a.eq_ignore_ascii_case(trimmed)) {
            return Err(ScheduleError::Cron(format!(
                "unknown alias `{trimmed}`; use one of {}",
                ALIASES.join(", ")
            )));
        }
    } else if !(fields == 5 || fields == 6) {
        return Err(ScheduleError::Cron(format!(
            "`{trimmed}` has {fields} fields; write 5 (minute hour day-of-month month day-of-week) or 6 (second first), or an alias such as @daily"
        )));
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build();
    let cron = parser
        .parse(trimmed)
        .map_err(|e| ScheduleError::Cron(format!("`{trimmed}` is not a cron expression: {e}")))?;
    // A pattern that can never match (30 February) is refused now rather
    // than silently never firing.
    let probe = Utc.timestamp_opt(0, 0).single().expect("the epoch exists");
    if cron.find_next_occurrence(&probe, false).is_err() {
        return Err(ScheduleError::Cron(format!(
            "`{trimmed}` never matches a real date"
        )));
    }
    Ok(cron)
}

/// What a schedule does when it (re)starts, given the last slot it handled
/// (`None`: it has never run) and the catch-up window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Nothing was missed (or this is the first start).
    Nothing,
    /// Fire once, late, for this slot: the latest one missed, within the window.
    CatchUp(i64),
    /// Slots were missed but all are older than the window: note the latest
    /// as handled, without firing.
    Skip(i64),
}

/// The catch-up rule: of the slots missed while the daemon was down (after
/// `last_handled`, up to `now`), only the latest may fire, and only if it is
/// at most `window_ms` old. So a restart never fires a slot twice (the last
/// handled slot is remembered) and never misses the latest one within the
/// window, and a long outage does not replay a backlog.
pub fn resume(schedule: &Schedule, last_handled: Option<i64>, now: i64, window_ms: i64) -> Resume {
    let Some(last) = last_handled else {
        return Resume::Nothing;
    };
    match schedule.latest_between(last, now) {
        None => Resume::Nothing,
        Some(slot) if now - slot <= window_ms => Resume::CatchUp(slot),
        Some(slot) => Resume::Skip(slot),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    fn next(expression: &str, zone: Option<&str>, after: &str) -> String {
        let schedule = Schedule::parse(expression, zone).unwrap();
        schedule.format(schedule.next_after(ms(after)).unwrap())
    }

    #[test]
    fn five_and_six_fields_and_aliases() {
        assert_eq!(
            next("*/15 * * * *", None, "2026-01-01T10:07:00Z"),
            "2026-01-01T10:15:00Z"
        );
        assert_eq!(
            next("30 * * * * *", None, "2026-01-01T10:07:00Z"),
            "2026-01-01T10:07:30Z",
            "six fields: seconds first"
        );
        assert_eq!(
            next("@daily", None, "2026-01-01T10:07:00Z"),
            "2026-01-02T00:00:00Z"
        );
        assert_eq!(
            next("@hourly", Some("Asia/Kolkata"), "2026-01-01T10:07:00Z"),
            "2026-01-01T16:00:00+05:30"
        );
        assert_eq!(
            next(
                "0 9 * * MON-FRI",
                Some("Europe/Berlin"),
                "2026-01-02T09:00:00+01:00"
            ),
            "2026-01-05T09:00:00+01:00",
            "exclusive of the start, skipping the weekend"
        );
    }

    #[test]
    fn a_slot_is_strictly_after_the_start_even_within_its_second() {
        let s = Schedule::parse("* * * * * *", None).unwrap();
        assert_eq!(s.next_after(1_000), Some(2_000));
        assert_eq!(s.next_after(1_999), Some(2_000));
        assert_eq!(s.next_after(2_000), Some(3_000));
    }

    #[test]
    fn daylight_saving_in_a_named_zone() {
        // Europe/Berlin springs forward at 02:00 on 2026-03-29: 02:30 does
        // not exist, and the slot fires when the clock resumes, at 03:00.
        assert_eq!(
            next(
                "30 2 * * *",
                Some("Europe/Berlin"),
                "2026-03-28T12:00:00+01:00"
            ),
            "2026-03-29T03:00:00+02:00"
        );
        // New York falls back at 02:00 on 2026-11-01: 01:30 happens twice,
        // a fixed-time job runs once.
        let s = Schedule::parse("30 1 * * *", Some("America/New_York")).unwrap();
        let first = s.next_after(ms("2026-11-01T00:00:00-04:00")).unwrap();
        assert_eq!(s.format(first), "2026-11-01T01:30:00-04:00");
        assert_eq!(
            s.format(s.next_after(first).unwrap()),
            "2026-11-02T01:30:00-05:00"
        );
    }

    #[test]
    fn bad_expressions_say_why() {
        for (expression, needle) in [
            ("", "fields"),
            ("* * * *", "4 fields"),
            ("* * * * * * *", "7 fields"),
            ("61 * * * *", "not a cron expression"),
            ("* * 31 2 *", "never matches"),
            ("@fortnightly", "unknown alias"),
            ("a b c d e", "not a cron expression"),
        ] {
            match Schedule::parse(expression, None) {
                Err(ScheduleError::Cron(message)) => {
                    assert!(message.contains(needle), "{expression}: {message}")
                }
                other => panic!("{expression}: {other:?}"),
            }
        }
        assert!(matches!(
            Schedule::parse("@daily", Some("Mars/Olympus")),
            Err(ScheduleError::Timezone(_))
        ));
    }

    #[test]
    fn resume_fires_only_the_latest_missed_slot_within_the_window() {
        let s = Schedule::parse("0 * * * *", None).unwrap();
        let at = |t: &str| ms(&format!("2026-01-01T{t}Z"));
        let hour = 3_600_000;
        assert_eq!(resume(&s, None, at("10:30:00"), hour), Resume::Nothing);
        assert_eq!(
            resume(&s, Some(at("10:00:00")), at("10:30:00"), hour),
            Resume::Nothing,
            "the 10:00 slot was handled"
        );
        assert_eq!(
            resume(&s, Some(at("08:00:00")), at("10:30:00"), hour),
            Resume::CatchUp(at("10:00:00")),
            "09:00 and 10:00 were missed; only 10:00 fires"
        );
        assert_eq!(
            resume(&s, Some(at("08:00:00")), at("10:30:00"), 60_000),
            Resume::Skip(at("10:00:00")),
            "outside a one-minute window"
        );
    }

    #[test]
    fn latest_between_is_fast_for_dense_schedules() {
        let s = Schedule::parse("* * * * * *", None).unwrap();
        let day = 86_400_000;
        assert_eq!(s.latest_between(0, day + 500), Some(day));
        assert_eq!(s.latest_between(0, 999), None);
    }
}

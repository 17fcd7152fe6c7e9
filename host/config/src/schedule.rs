//! `[tenant.schedule]`: when `m365sync serve` runs a tenant. A cron expression in an IANA
//! time zone (`cron = "0 2 * * *"`, `timezone = "Europe/Paris"`), or an elapsed-time
//! interval (`every = "1h"`); neither is a nightly run at 02:00 in the host's zone
//! (`[serve] timezone`, else the system's, else UTC).
//!
//! Cron expressions are croner's (a maintained crate following the Open Cron Pattern
//! Specification), evaluated on jiff's zoned times, so daylight saving time follows one
//! documented rule: a time that a spring-forward gap skips runs once, at the first instant
//! after the gap (02:30 on a day whose clocks jump from 02:00 to 03:00 runs at 03:00), and a
//! time that a fall-back repeats runs once, at its first occurrence. An interval is elapsed
//! time (1h is 3600 s whatever the clocks do), on a grid counted from the Unix epoch, so
//! every worker and every restart agrees on the due times without sharing any state.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::{ConfigFile, TenantConfig, rules};

/// The schedule of a tenant that sets none: nightly at 02:00.
pub const DEFAULT_CRON: &str = "0 2 * * *";

/// The shortest `every`: a run takes seconds to minutes, and the queue keeps one job per
/// tenant, so a shorter interval would only queue runs behind each other.
pub const MIN_EVERY: Duration = Duration::from_secs(60);
/// The longest `every`: a year (a cron expression says "once a month" better).
pub const MAX_EVERY: Duration = Duration::from_secs(366 * 86_400);

/// `[tenant.schedule]` as the file has it; each value was checked as it was read, the rules
/// between them (`cron` or `every`, not both) are in `validate`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    /// A cron expression of five fields (minute hour day-of-month month day-of-week) or a
    /// nickname (`@daily`), in `timezone`.
    pub cron: Option<CronExpr>,
    /// The IANA zone of `cron`, or of the nightly default when `cron` is not set (default:
    /// the host's zone).
    pub timezone: Option<Zone>,
    /// An elapsed-time interval (`30m`, `1h`, `1d`), at least a minute; not with `cron`.
    /// Due at the multiples of the interval since 1970-01-01 00:00 UTC (`1h`: on the hour
    /// UTC; `1d`: at midnight UTC).
    pub every: Option<Every>,
}

/// A checked cron expression, and its text as the file wrote it.
#[derive(Clone)]
pub struct CronExpr {
    text: String,
    // Shared: a parsed pattern is a few hundred bytes, and schedules are cloned per tenant.
    cron: Arc<croner::Cron>,
}

impl CronExpr {
    /// Parse a five-field cron expression (seconds are not a field: runs are minutes apart
    /// at the finest) that fires at least once.
    pub fn parse(text: &str) -> Result<CronExpr, String> {
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .build();
        let cron = parser.parse(text).map_err(|error| {
            format!(
                "{text:?} is not a cron expression ({error}); write five fields, minute hour \
                 day-of-month month day-of-week, e.g. \"0 2 * * *\" (02:00 daily) or \
                 \"30 6 1 * *\" (06:30 on the 1st of each month)"
            )
        })?;
        Ok(CronExpr {
            text: text.trim().to_string(),
            cron: Arc::new(cron),
        })
    }

    /// The expression as the file wrote it (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first time strictly after `after` that the expression names in `zone`; None when
    /// there is none (an expression no date matches, such as February 30).
    fn next_after(&self, zone: &TimeZone, after: Timestamp) -> Option<Timestamp> {
        // croner walks whole seconds: start from the second `after` falls in, which is not
        // itself after `after` unless `after` is whole, and croner skips it either way.
        let mut second = after.as_second();
        if after.subsec_nanosecond() < 0 {
            second -= 1;
        }
        let start = Timestamp::from_second(second).ok()?.to_zoned(zone.clone());
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        Some(next.timestamp())
    }
}

impl fmt::Debug for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for CronExpr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let cron = CronExpr::parse(&text).map_err(D::Error::custom)?;
        // Checked now, not at the first run: an expression no date matches would leave the
        // tenant never synced and nothing saying why.
        if cron
            .next_after(&TimeZone::UTC, Timestamp::UNIX_EPOCH)
            .is_none()
        {
            return Err(D::Error::custom(format!(
                "{text:?} never fires: no date matches it (check the day of the month against \
                 the month)"
            )));
        }
        Ok(cron)
    }
}

/// A time zone of the IANA database, and its name.
#[derive(Clone)]
pub struct Zone {
    name: String,
    zone: TimeZone,
}

impl Zone {
    /// The zone of an IANA name (`Europe/Paris`, `America/New_York`, `UTC`), from the
    /// system's database or, without one, the copy bundled with jiff.
    pub fn named(name: &str) -> Result<Zone, String> {
        let trimmed = name.trim();
        let zone = TimeZone::get(trimmed).map_err(|_| {
            format!(
                "{name:?} is not a time zone of the IANA database; write a name such as \
                 \"Europe/Paris\", \"America/New_York\" or \"UTC\""
            )
        })?;
        Ok(Zone {
            name: zone.iana_name().unwrap_or(trimmed).to_string(),
            zone,
        })
    }

    pub fn utc() -> Zone {
        Zone {
            name: "UTC".to_string(),
            zone: TimeZone::UTC,
        }
    }

    /// The system's local zone (`TZ`, else `/etc/localtime`), else UTC.
    pub fn system() -> Zone {
        match TimeZone::try_system() {
            Ok(zone) => Zone {
                name: zone
                    .iana_name()
                    .unwrap_or("the system's time zone")
                    .to_string(),
                zone,
            },
            Err(_) => Zone::utc(),
        }
    }

    /// The zone's IANA name (or "the system's time zone" for an unnamed local zone).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.zone
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.name)
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Zone::named(&name).map_err(D::Error::custom)
    }
}

/// An elapsed-time interval, and its text as the file wrote it.
#[derive(Clone, PartialEq, Eq)]
pub struct Every {
    text: String,
    interval: Duration,
}

impl Every {
    /// An interval written as `rules::duration` reads it, within
    /// [`MIN_EVERY`]..=[`MAX_EVERY`].
    pub fn parse(text: &str) -> Result<Every, String> {
        let interval = rules::duration(text, MIN_EVERY, MAX_EVERY, "1m..=366d")?;
        Ok(Every {
            text: text.trim().to_string(),
            interval,
        })
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The first multiple of the interval since the Unix epoch strictly after `after`.
    fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let step = i128::try_from(self.interval.as_nanos()).ok()?;
        if step <= 0 {
            return None;
        }
        let now = after.as_nanosecond();
        let next = (now.div_euclid(step) + 1).checked_mul(step)?;
        Timestamp::from_nanosecond(next).ok()
    }
}

impl fmt::Debug for Every {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl fmt::Display for Every {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Every {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Every::parse(&text).map_err(D::Error::custom)
    }
}

/// When a tenant's scheduled runs are due.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// The times a cron expression names, in a zone's wall-clock time.
    Cron { cron: CronExpr, zone: Zone },
    /// Every multiple of an interval since the Unix epoch (elapsed time).
    Every(Every),
}

impl Schedule {
    /// The nightly default: 02:00 in `zone`.
    pub fn nightly(zone: Zone) -> Schedule {
        match CronExpr::parse(DEFAULT_CRON) {
            Ok(cron) => Schedule::Cron { cron, zone },
            // Not reached (a unit test parses DEFAULT_CRON): a daily interval keeps a
            // service syncing should a croner release ever refuse it.
            Err(_) => Schedule::Every(Every {
                text: "1d".to_string(),
                interval: Duration::from_secs(86_400),
            }),
        }
    }

    /// The first due time strictly after `after`; None when no time is due any more (a
    /// cron expression no later date matches).
    ///
    /// Daylight saving time, for a cron expression naming a fixed time of day: in a
    /// spring-forward gap, the time runs once at the first instant after the gap (the
    /// transition itself: 02:30 in Paris on 2026-03-29 runs at 03:00 CEST); in a fall-back
    /// repeat, once at its first occurrence (02:30 in Paris on 2026-10-25 runs at 02:30
    /// CEST, not again at 02:30 CET). Expressions with wildcard or stepped hours (`0 * * *
    /// *`) keep to the wall clock: the gap's runs are skipped, a repeated hour runs twice.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::Cron { cron, zone } => cron.next_after(zone.time_zone(), after),
            Schedule::Every(every) => every.next_after(after),
        }
    }
}

impl fmt::Display for Schedule {
    /// In words: `0 2 * * * (Europe/Paris)`, `every 1h`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Cron { cron, zone } => write!(f, "{cron} ({zone})"),
            Schedule::Every(every) => write!(f, "every {every}"),
        }
    }
}

impl ConfigFile {
    /// When `serve` runs `tenant`: its `every`, else its `cron` in its `timezone` (else the
    /// host's zone), else nightly at 02:00 in its `timezone` (else the host's zone: `[serve]
    /// timezone`, else the system's, else UTC).
    pub fn schedule(&self, tenant: &TenantConfig) -> Schedule {
        let section = &tenant.schedule;
        if let Some(every) = &section.every {
            return Schedule::Every(every.clone());
        }
        let zone = section.timezone.clone().unwrap_or_else(|| self.host_zone());
        match &section.cron {
            Some(cron) => Schedule::Cron {
                cron: cron.clone(),
                zone,
            },
            None => Schedule::nightly(zone),
        }
    }
}

#[cfg(test)]
mod tests;

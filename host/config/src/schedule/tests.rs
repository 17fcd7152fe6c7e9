//! Schedules across daylight saving time, with fixed instants in each zone's 2026
//! transitions (Europe/Paris: 2026-03-29 02:00 CET → 03:00 CEST, 2026-10-25 03:00 CEST →
//! 02:00 CET; America/New_York: 2026-03-08 02:00 EST → 03:00 EDT, 2026-11-01 02:00 EDT →
//! 01:00 EST).

use super::*;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn cron(expression: &str, zone: &str) -> Schedule {
    Schedule::Cron {
        cron: CronExpr::parse(expression).unwrap(),
        zone: Zone::named(zone).unwrap(),
    }
}

/// The due times of `schedule` after `from` and before `until`, as next_after gives them
/// one after the other (as a scheduler does).
fn runs(schedule: &Schedule, from: &str, until: &str) -> Vec<String> {
    let until = at(until);
    let mut out = Vec::new();
    let mut after = at(from);
    while let Some(next) = schedule.next_after(after) {
        if next >= until {
            break;
        }
        assert!(next > after, "{next} is not after {after}");
        out.push(next.to_string());
        after = next;
    }
    out
}

#[test]
fn a_time_in_the_spring_forward_gap_runs_once_at_the_end_of_the_gap() {
    // Paris: 02:30 does not exist on 2026-03-29; it runs at 03:00 CEST (01:00 UTC).
    assert_eq!(
        runs(
            &cron("30 2 * * *", "Europe/Paris"),
            "2026-03-27T12:00:00Z",
            "2026-03-31T00:00:00Z"
        ),
        [
            "2026-03-28T01:30:00Z", // 02:30 CET
            "2026-03-29T01:00:00Z", // 03:00 CEST: the first instant after the gap
            "2026-03-30T00:30:00Z", // 02:30 CEST
        ]
    );
    // New York: 02:30 does not exist on 2026-03-08; it runs at 03:00 EDT (07:00 UTC).
    assert_eq!(
        runs(
            &cron("30 2 * * *", "America/New_York"),
            "2026-03-07T00:00:00Z",
            "2026-03-10T00:00:00Z"
        ),
        [
            "2026-03-07T07:30:00Z", // 02:30 EST
            "2026-03-08T07:00:00Z", // 03:00 EDT
            "2026-03-09T06:30:00Z", // 02:30 EDT
        ]
    );
    // The nightly default (02:00) on the same day: 03:00 CEST.
    assert_eq!(
        Schedule::nightly(Zone::named("Europe/Paris").unwrap())
            .next_after(at("2026-03-28T12:00:00Z"))
            .map(|t| t.to_string()),
        Some("2026-03-29T01:00:00Z".to_string())
    );
}

#[test]
fn a_time_the_fall_back_repeats_runs_once_at_its_first_occurrence() {
    // Paris: 02:00–03:00 happens twice on 2026-10-25; 02:30 runs at 02:30 CEST only.
    assert_eq!(
        runs(
            &cron("30 2 * * *", "Europe/Paris"),
            "2026-10-23T12:00:00Z",
            "2026-10-27T00:00:00Z"
        ),
        [
            "2026-10-24T00:30:00Z", // 02:30 CEST
            "2026-10-25T00:30:00Z", // 02:30 CEST, the first of two
            "2026-10-26T01:30:00Z", // 02:30 CET
        ]
    );
    // New York: 01:00–02:00 happens twice on 2026-11-01; 01:30 runs at 01:30 EDT only,
    // and 02:30 (which happens once) at 02:30 EST.
    assert_eq!(
        runs(
            &cron("30 1 * * *", "America/New_York"),
            "2026-10-31T00:00:00Z",
            "2026-11-03T00:00:00Z"
        ),
        [
            "2026-10-31T05:30:00Z", // 01:30 EDT
            "2026-11-01T05:30:00Z", // 01:30 EDT, the first of two
            "2026-11-02T06:30:00Z", // 01:30 EST
        ]
    );
    assert_eq!(
        runs(
            &cron("30 2 * * *", "America/New_York"),
            "2026-10-31T12:00:00Z",
            "2026-11-02T12:00:00Z"
        ),
        ["2026-11-01T07:30:00Z", "2026-11-02T07:30:00Z"]
    );
    // Asked from inside the repeated hour, after the run (a scheduler that restarts
    // there): the next run is the next day's, not the second 02:30.
    let paris = cron("30 2 * * *", "Europe/Paris");
    for after in ["2026-10-25T00:45:00Z", "2026-10-25T01:15:00Z"] {
        assert_eq!(
            paris.next_after(at(after)).map(|t| t.to_string()),
            Some("2026-10-26T01:30:00Z".to_string()),
            "after {after}"
        );
    }
}

#[test]
fn hourly_crons_follow_the_wall_clock_through_transitions() {
    // "0 * * * *" in Paris on the spring day: 02:00 does not exist, the hour after 01:00
    // CET is 03:00 CEST, one elapsed hour later.
    assert_eq!(
        runs(
            &cron("0 * * * *", "Europe/Paris"),
            "2026-03-28T23:30:00Z",
            "2026-03-29T02:30:00Z"
        ),
        [
            "2026-03-29T00:00:00Z", // 01:00 CET
            "2026-03-29T01:00:00Z", // 03:00 CEST
            "2026-03-29T02:00:00Z", // 04:00 CEST
        ]
    );
    // On the fall-back day, 02:00 happens twice and an hourly cron runs at both.
    assert_eq!(
        runs(
            &cron("0 * * * *", "Europe/Paris"),
            "2026-10-24T23:30:00Z",
            "2026-10-25T02:30:00Z"
        ),
        [
            "2026-10-25T00:00:00Z", // 02:00 CEST
            "2026-10-25T01:00:00Z", // 02:00 CET
            "2026-10-25T02:00:00Z", // 03:00 CET
        ]
    );
}

#[test]
fn a_monthly_cron_keeps_its_local_time_across_offsets() {
    assert_eq!(
        runs(
            &cron("0 6 1 * *", "Europe/Paris"),
            "2026-01-15T00:00:00Z",
            "2026-05-15T00:00:00Z"
        ),
        [
            "2026-02-01T05:00:00Z",
            "2026-03-01T05:00:00Z",
            "2026-04-01T04:00:00Z", // CEST from 2026-03-29
            "2026-05-01T04:00:00Z",
        ]
    );
}

#[test]
fn every_is_elapsed_time_on_a_grid_from_the_epoch() {
    let hourly = Schedule::Every(Every::parse("1h").unwrap());
    // Across Paris's spring-forward instant (01:00 UTC): 3600 s apart, whatever the clocks.
    let due = runs(&hourly, "2026-03-29T00:00:00Z", "2026-03-29T04:00:01Z");
    assert_eq!(
        due,
        [
            "2026-03-29T01:00:00Z",
            "2026-03-29T02:00:00Z",
            "2026-03-29T03:00:00Z",
            "2026-03-29T04:00:00Z",
        ]
    );
    // And across New York's fall-back (06:00 UTC).
    let due = runs(&hourly, "2026-11-01T04:30:00Z", "2026-11-01T07:30:00Z");
    assert_eq!(
        due,
        [
            "2026-11-01T05:00:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T07:00:00Z"
        ]
    );
    // From any instant, the next point of the grid; strictly after a point on it.
    let half_hourly = Schedule::Every(Every::parse("30m").unwrap());
    assert_eq!(
        half_hourly.next_after(at("2026-03-29T00:10:00.5Z")),
        Some(at("2026-03-29T00:30:00Z"))
    );
    assert_eq!(
        half_hourly.next_after(at("2026-03-29T00:30:00Z")),
        Some(at("2026-03-29T01:00:00Z"))
    );
    let daily = Schedule::Every(Every::parse("1d").unwrap());
    assert_eq!(
        daily.next_after(at("2026-03-29T12:00:00Z")),
        Some(at("2026-03-30T00:00:00Z"))
    );
}

#[test]
fn a_cron_no_date_matches_never_fires() {
    let schedule = cron("0 0 30 2 *", "Europe/Paris");
    assert_eq!(schedule.next_after(at("2026-01-01T00:00:00Z")), None);
    // February 29 does fire, in leap years.
    assert_eq!(
        cron("0 0 29 2 *", "UTC")
            .next_after(at("2026-01-01T00:00:00Z"))
            .map(|t| t.to_string()),
        Some("2028-02-29T00:00:00Z".to_string())
    );
}

#[test]
fn next_after_is_strictly_after_even_within_a_second() {
    let schedule = cron("30 2 * * *", "UTC");
    assert_eq!(
        schedule.next_after(at("2026-05-01T02:29:59.5Z")),
        Some(at("2026-05-01T02:30:00Z"))
    );
    assert_eq!(
        schedule.next_after(at("2026-05-01T02:30:00Z")),
        Some(at("2026-05-02T02:30:00Z"))
    );
    assert_eq!(
        schedule.next_after(at("2026-05-01T02:30:00.25Z")),
        Some(at("2026-05-02T02:30:00Z"))
    );
}

#[test]
fn schedules_say_themselves_in_words() {
    assert_eq!(
        cron("0 2 * * *", "Europe/Paris").to_string(),
        "0 2 * * * (Europe/Paris)"
    );
    assert_eq!(
        Schedule::Every(Every::parse(" 1h ").unwrap()).to_string(),
        "every 1h"
    );
    assert_eq!(
        Schedule::nightly(Zone::utc()).to_string(),
        "0 2 * * * (UTC)"
    );
    assert_eq!(
        Schedule::nightly(Zone::named("america/new_york").unwrap()).to_string(),
        "0 2 * * * (America/New_York)"
    );
}

#[test]
fn bad_values_say_what_is_allowed() {
    for (bad, expected) in [
        ("61 * * * *", "five fields"),
        ("0 0 2 * * *", "five fields"),
        ("every day", "five fields"),
        ("", "five fields"),
    ] {
        let error = CronExpr::parse(bad).unwrap_err();
        assert!(
            error.contains(&format!("{bad:?}")) && error.contains(expected),
            "{bad}: {error}"
        );
    }
    let error = Zone::named("Europe/Pariss").unwrap_err();
    assert!(
        error.contains("\"Europe/Pariss\"") && error.contains("IANA"),
        "{error}"
    );
    for (bad, expected) in [
        ("30s", "1m..=366d"),
        ("0m", "1m..=366d"),
        ("-1h", "1m..=366d"),
        ("400d", "1m..=366d"),
        ("1 month", "months or years"),
        ("hourly", "not a duration"),
        ("", "not a duration"),
    ] {
        let error = Every::parse(bad).unwrap_err();
        assert!(
            error.contains(&format!("{bad:?}")) && error.contains(expected),
            "{bad}: {error}"
        );
    }
    assert_eq!(
        Every::parse("1h30m").unwrap().interval(),
        Duration::from_secs(5400)
    );
    assert_eq!(
        Every::parse("2 hours").unwrap().interval(),
        Duration::from_secs(7200)
    );
}

// --- `[tenant.schedule]` through the file ---

const TENANT: &str = r#"
[[tenant]]
name = "contoso"
tenant_id = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret_env = "CONTOSO_SECRET"
"#;

/// The schedule of a tenant with `[tenant.schedule]` holding `schedule` (its first key is
/// line 8), and `[serve]` holding `serve`.
fn schedule_of(schedule: &str, serve: &str) -> Result<String, String> {
    let text = format!("{TENANT}[tenant.schedule]\n{schedule}\n[serve]\n{serve}\n");
    let config = ConfigFile::parse(&text, std::path::Path::new("t.toml"))
        .map_err(|error| error.to_string())?;
    Ok(config.schedule(&config.tenants[0]).to_string())
}

fn assert_names(error: &str, parts: &[&str]) {
    for part in parts {
        assert!(error.contains(part), "{part:?} missing from: {error}");
    }
}

#[test]
fn the_file_picks_cron_in_a_zone_every_or_nightly_in_the_hosts_zone() {
    let ok = |schedule: &str, serve: &str| schedule_of(schedule, serve).unwrap();
    assert_eq!(
        ok("cron = \"30 6 * * 1-5\"\ntimezone = \"Europe/Paris\"", ""),
        "30 6 * * 1-5 (Europe/Paris)"
    );
    assert_eq!(ok("every = \"1h\"", ""), "every 1h");
    assert_eq!(
        ok("", "timezone = \"America/New_York\""),
        "0 2 * * * (America/New_York)"
    );
    assert_eq!(
        ok("cron = \"@hourly\"", "timezone = \"Asia/Tokyo\""),
        "@hourly (Asia/Tokyo)"
    );
    // A zone alone: nightly, in that zone rather than the host's.
    assert_eq!(
        ok("timezone = \"Europe/Paris\"", "timezone = \"UTC\""),
        "0 2 * * * (Europe/Paris)"
    );
    // Nothing anywhere: nightly in the system's zone (else UTC).
    assert_eq!(ok("", ""), format!("0 2 * * * ({})", Zone::system().name()));
    let config = ConfigFile::parse(TENANT, std::path::Path::new("t.toml")).unwrap();
    assert!(matches!(
        config.schedule(&config.tenants[0]),
        Schedule::Cron { .. }
    ));
}

#[test]
fn bad_schedules_name_the_line_the_key_and_why() {
    let error = |schedule: &str, serve: &str| schedule_of(schedule, serve).unwrap_err();
    assert_names(
        &error("cron = \"0 25 * * *\"", ""),
        &[
            "t.toml",
            "line 8",
            "tenant \"contoso\"",
            "schedule.cron",
            "\"0 25 * * *\" is not a cron expression",
            "five fields",
        ],
    );
    assert_names(
        &error("cron = \"0 0 30 2 *\"", ""),
        &["line 8", "schedule.cron", "never fires"],
    );
    assert_names(
        &error("cron = \"0 2 * * *\"\ntimezone = \"Europe/Paaris\"", ""),
        &["line 9", "schedule.timezone", "\"Europe/Paaris\"", "IANA"],
    );
    assert_names(
        &error("cron = \"0 2 * * *\"\nevery = \"1h\"", ""),
        &["line 9", "schedule.every", "both set"],
    );
    assert_names(
        &error("every = \"1h\"\ntimezone = \"UTC\"", ""),
        &["line 9", "schedule.timezone", "remove timezone"],
    );
    assert_names(
        &error("every = \"30s\"", ""),
        &["line 8", "schedule.every", "\"30s\"", "1m..=366d"],
    );
    assert_names(
        &error("every = 3600", ""),
        &["line 8", "schedule.every", "a string"],
    );
    assert_names(
        &error("at = \"02:00\"", ""),
        &["schedule", "unknown field", "at"],
    );
}

#[test]
fn zones_resolve_without_a_system_database() {
    // jiff's `tzdb-bundle-always`: the fallback when a machine has no zoneinfo (slim
    // containers) holds the zones too.
    let bundled = jiff::tz::TimeZoneDatabase::bundled();
    for name in ["Europe/Paris", "America/New_York", "UTC"] {
        assert!(bundled.get(name).is_ok(), "{name}");
    }
}

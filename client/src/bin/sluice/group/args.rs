//! Parsing of argument values: group states (`--state`), `TOPIC` or `TOPIC:P,P,...`
//! (`--topic`) and datetimes (`--to-datetime`), each as clap's `value_parser`.

use sluice_client::GroupState;

pub(super) fn parse_state(text: &str) -> Result<GroupState, String> {
    match GroupState::parse(text) {
        GroupState::Unknown(_) => {
            let known: Vec<&str> = GroupState::KNOWN.iter().map(GroupState::name).collect();
            Err(format!(
                "unknown group state '{text}' (expected one of {})",
                known.join(", ")
            ))
        }
        state => Ok(state),
    }
}

/// `TOPIC` or `TOPIC:P,P,...`.
pub(super) fn parse_topic_partitions(text: &str) -> Result<(String, Vec<i32>), String> {
    let (topic, partitions) = match text.split_once(':') {
        None => (text, Vec::new()),
        Some((topic, list)) => {
            let partitions = list
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse::<i32>()
                        .ok()
                        .filter(|p| *p >= 0)
                        .ok_or_else(|| format!("'{p}' in '{text}' is not a partition number"))
                })
                .collect::<Result<Vec<i32>, String>>()?;
            (topic, partitions)
        }
    };
    if topic.is_empty() {
        return Err(format!(
            "no topic in '{text}' (expected TOPIC or TOPIC:P,P...)"
        ));
    }
    Ok((topic.to_string(), partitions))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction][Z|+HH:MM|-HH:MM]` (no zone: UTC) as ms since the epoch.
pub(super) fn parse_datetime(text: &str) -> Result<i64, String> {
    let bad = || {
        format!("'{text}' is not a datetime like 2026-12-07T10:00:00Z (YYYY-MM-DDTHH:MM:SS[.mmm][Z|+HH:MM])")
    };
    let number = |s: &str| -> Result<i64, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<i64>().map_err(|_| bad())
    };
    let (date, rest) = text.split_once(['T', 't', ' ']).ok_or_else(bad)?;
    let mut date_parts = date.split('-');
    let (Some(year), Some(month), Some(day), None) = (
        date_parts.next(),
        date_parts.next(),
        date_parts.next(),
        date_parts.next(),
    ) else {
        return Err(bad());
    };
    let (year, month, day) = (number(year)?, number(month)?, number(day)?);
    // The zone: Z, +HH:MM or -HH:MM at the end, or none (UTC).
    let (time, offset_minutes) = if let Some(time) = rest.strip_suffix(['Z', 'z']) {
        (time, 0)
    } else if let Some(at) = rest.rfind(['+', '-']) {
        let (time, zone) = rest.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (hours, minutes) = zone[1..].split_once(':').ok_or_else(bad)?;
        (time, sign * (number(hours)? * 60 + number(minutes)?))
    } else {
        (rest, 0)
    };
    let (clock, fraction) = match time.split_once('.') {
        Some((clock, fraction)) => (clock, fraction),
        None => (time, ""),
    };
    let mut clock_parts = clock.split(':');
    let (Some(hour), Some(minute), second, None) = (
        clock_parts.next(),
        clock_parts.next(),
        clock_parts.next(),
        clock_parts.next(),
    ) else {
        return Err(bad());
    };
    let (hour, minute) = (number(hour)?, number(minute)?);
    let second = second.map(number).transpose()?.unwrap_or(0);
    let millis = if fraction.is_empty() {
        0
    } else {
        let digits: String = fraction.chars().chain("000".chars()).take(3).collect();
        number(&digits)?
    };
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if !(1..=days_in_month).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1_000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

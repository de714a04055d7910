//! How taskwarden's numbers read to a person: [`Stats`] as a short aligned
//! table, and durations in the unit a person would pick (`2.00 s`, `3.1 ms`,
//! `850 µs`), used by the `Display` of [`CloseReport`](crate::CloseReport).

use std::fmt;

use crate::stats::Stats;

/// Shows the counters as six aligned lines, one per field, with no trailing
/// newline:
///
/// ```text
/// running      0
/// queued       0
/// threads      2
/// completed  400
/// panicked     8
/// cancelled    0
/// ```
///
/// `Debug` still gives the raw struct.
///
/// # Examples
///
/// ```
/// let manager = taskwarden::TaskManager::new(2);
/// manager.spawn(|| ()).unwrap().join().unwrap();
/// let stats = manager.stats();
/// println!("{}", stats);
///
/// let text = stats.to_string();
/// assert_eq!(text.lines().count(), 6);
/// assert_eq!(text.lines().nth(3), Some("completed  1"));
/// ```
impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: [(&str, String); 6] = [
            ("running", self.running.to_string()),
            ("queued", self.queued.to_string()),
            ("threads", self.threads.to_string()),
            ("completed", self.completed.to_string()),
            ("panicked", self.panicked.to_string()),
            ("cancelled", self.cancelled.to_string()),
        ];
        let width = rows.iter().map(|(_, value)| value.len()).max().unwrap_or(1);
        for (at, (label, value)) in rows.iter().enumerate() {
            if at > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{label:<9}  {value:>width$}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::error::human_duration;
    use crate::stats::Stats;

    #[test]
    fn durations_read_like_a_person_writes_them() {
        let cases = [
            (Duration::ZERO, "0 ns"),
            (Duration::from_nanos(12), "12 ns"),
            (Duration::from_nanos(999), "999 ns"),
            (Duration::from_nanos(1_000), "1 µs"),
            (Duration::from_micros(850), "850 µs"),
            (Duration::from_nanos(999_499), "999 µs"),
            (Duration::from_nanos(999_500), "1.0 ms"),
            (Duration::from_micros(3_100), "3.1 ms"),
            (Duration::from_micros(3_149), "3.1 ms"),
            (Duration::from_micros(250_000), "250.0 ms"),
            (Duration::from_nanos(999_960_000), "1.00 s"),
            (Duration::from_secs(2), "2.00 s"),
            (Duration::from_millis(2_004), "2.00 s"),
            (Duration::from_millis(59_990), "59.99 s"),
            (Duration::from_millis(59_996), "1 min 00 s"),
            (Duration::from_secs(125), "2 min 05 s"),
            (Duration::from_secs(3_599), "59 min 59 s"),
            (Duration::from_secs(3_600), "1 h 00 min"),
            (Duration::from_secs(3_600 + 2 * 60 + 29), "1 h 02 min"),
            (Duration::from_secs(3_600 + 2 * 60 + 30), "1 h 03 min"),
            (Duration::from_secs(100 * 3_600), "100 h 00 min"),
        ];
        for (duration, expected) in cases {
            assert_eq!(human_duration(duration), expected, "{duration:?}");
        }
    }

    #[test]
    fn stats_align_their_numbers() {
        let stats = Stats {
            running: 3,
            queued: 12,
            threads: 16,
            completed: 1_234,
            panicked: 8,
            cancelled: 0,
        };
        assert_eq!(
            stats.to_string(),
            "running       3\n\
             queued       12\n\
             threads      16\n\
             completed  1234\n\
             panicked      8\n\
             cancelled     0"
        );
    }
}

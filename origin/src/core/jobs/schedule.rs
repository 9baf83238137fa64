//! Jobs enqueued on a schedule: 5-field cron expressions (minute, hour, day of month, month,
//! day of week) evaluated in UTC. Every instance keeps the schedule, and the first to claim a
//! run's slot in the store enqueues it, so each run happens once however many instances run.

use std::str::FromStr;
use std::time::Duration;

use chrono::Utc;
use croner::Cron;
use tokio::sync::watch;

use super::{Jobs, NewJob};

/// A job enqueued whenever its expression matches.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The schedule's name, in logs and slot claims.
    pub name: &'static str,
    /// When it runs.
    pub cron: Cron,
    /// What it enqueues.
    pub jobs: Vec<NewJob>,
}

/// A cron expression that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a 5-field cron expression: {0}")]
pub struct ScheduleError(String);

/// Parses a 5-field cron expression.
pub fn parse(expression: &str) -> Result<Cron, ScheduleError> {
    if expression.split_whitespace().count() != 5 {
        return Err(ScheduleError(expression.to_owned()));
    }
    Cron::from_str(expression).map_err(|error| ScheduleError(error.to_string()))
}

impl Schedule {
    /// The next run after now, in Unix seconds.
    pub fn next_slot(&self) -> Option<i64> {
        self.cron
            .find_next_occurrence(&Utc::now(), false)
            .ok()
            .map(|next| next.timestamp())
    }
}

/// Keeps every schedule until `stop` turns `true`.
pub fn start(
    jobs: &Jobs,
    schedules: Vec<Schedule>,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    schedules
        .into_iter()
        .map(|schedule| tokio::spawn(keep(jobs.clone(), schedule, stop.clone())))
        .collect()
}

async fn keep(jobs: Jobs, schedule: Schedule, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        let Some(slot) = schedule.next_slot() else {
            tracing::warn!(schedule = schedule.name, "schedule never matches again");
            return;
        };
        let wait = u64::try_from(slot - Utc::now().timestamp()).unwrap_or(0);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
            _ = stop.changed() => return,
        }
        // Past the slot's second, so the next computation finds the following one.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let slot = u64::try_from(slot).unwrap_or(0);
        match jobs.store().claim_slot(schedule.name, slot).await {
            Ok(true) => {
                let batch: Vec<NewJob> = schedule
                    .jobs
                    .iter()
                    .map(|job| {
                        let key = format!("schedule:{}:{slot}:{}", schedule.name, job.kind);
                        job.clone().with_key(key)
                    })
                    .collect();
                match jobs.enqueue_all(&batch).await {
                    Ok(done) => tracing::info!(
                        schedule = schedule.name,
                        jobs = done.len(),
                        "scheduled jobs enqueued"
                    ),
                    Err(error) => {
                        tracing::warn!(schedule = schedule.name, %error, "scheduled jobs not enqueued")
                    }
                }
            }
            Ok(false) => {
                tracing::debug!(schedule = schedule.name, "run claimed by another instance")
            }
            Err(error) => {
                tracing::warn!(schedule = schedule.name, %error, "schedule slot not claimed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_fields_parse_and_others_are_refused() {
        assert!(parse("*/5 * * * *").is_ok());
        assert!(parse("17 3 * * *").is_ok());
        assert!(parse("* * * *").is_err());
        assert!(parse("0 */5 * * * *").is_err(), "seconds are not accepted");
        assert!(parse("61 * * * *").is_err());
    }

    #[test]
    fn the_next_slot_is_in_the_future_on_the_expressions_grid() {
        let schedule = Schedule {
            name: "test",
            cron: parse("*/5 * * * *").expect("valid"),
            jobs: vec![NewJob::new(
                super::super::Queue::Cleanup,
                "noop",
                serde_json::Value::Null,
            )],
        };
        let now = Utc::now().timestamp();
        let next = schedule.next_slot().expect("a next run");
        assert!(next > now && next <= now + 300);
        assert_eq!(next % 300, 0, "every five minutes, in UTC");
    }
}

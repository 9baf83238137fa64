//! The job store's reads and operators' actions on Redis: counts per state, single jobs, the
//! dead-letter set, the pause switch, trimming of finished records, and the slots that make a
//! scheduled run happen once across instances. The queue's moving parts (enqueue, delivery,
//! completion) are in [`super::redis_store`].

use redis::Value;

use super::job::{unix_ms, Job, Queue, QueueCounts, Retention};
use super::redis_replies::{entry_list, job_from_fields, last_delivered, GROUP};
use super::redis_store::{RedisStore, StoreError};
use super::scripts;

impl RedisStore {
    /// How many jobs of `queue` are in each state.
    pub async fn counts(&self, queue: Queue) -> Result<QueueCounts, StoreError> {
        let keys = self.keys(queue);
        let mut pipe = redis::pipe();
        pipe.cmd("XLEN").arg(&keys.stream);
        pipe.cmd("XPENDING").arg(&keys.stream).arg(GROUP);
        for set in [&keys.delayed, &keys.completed, &keys.failed, &keys.dead] {
            pipe.cmd("ZCARD").arg(set);
        }
        pipe.cmd("EXISTS").arg(&keys.paused);
        pipe.cmd("XINFO").arg("GROUPS").arg(&keys.stream);
        let mut conn = self.conn.clone();
        let reply: Vec<Value> = match self.run(pipe.query_async(&mut conn)).await {
            Ok(reply) => reply,
            // No stream yet: nothing was ever enqueued.
            Err(StoreError::Redis(message)) if message.contains("no such key") => {
                return Ok(QueueCounts::default())
            }
            Err(error) => return Err(error),
        };
        let number = |index: usize| -> u64 {
            reply
                .get(index)
                .and_then(|value| redis::from_redis_value_ref::<u64>(value).ok())
                .unwrap_or(0)
        };
        let length = number(0);
        let active = match reply.get(1) {
            Some(Value::Array(summary)) => summary
                .first()
                .and_then(|v| redis::from_redis_value_ref::<u64>(v).ok())
                .unwrap_or(0),
            _ => 0,
        };
        let oldest_waiting_ms = match reply.get(7).and_then(last_delivered) {
            Some(last) => self.oldest_after(&keys.stream, &last).await?,
            None => 0,
        };
        Ok(QueueCounts {
            waiting: length.saturating_sub(active),
            active,
            delayed: number(2),
            completed: number(3),
            failed: number(4),
            dead: number(5),
            paused: number(6) == 1,
            oldest_waiting_ms,
        })
    }

    /// How long the first entry after `last` (the group's last delivered) has waited.
    async fn oldest_after(&self, stream: &str, last: &str) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let reply: Value = self
            .run(
                redis::cmd("XRANGE")
                    .arg(stream)
                    .arg(format!("({last}"))
                    .arg("+")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(&mut conn),
            )
            .await?;
        let since = entry_list(&reply)
            .first()
            .and_then(|(entry, _)| entry.split('-').next()?.parse::<u64>().ok());
        Ok(since.map_or(0, |since| unix_ms().saturating_sub(since)))
    }

    /// The job `id` of `queue`, if it is still kept.
    pub async fn get(&self, queue: Queue, id: &str) -> Result<Option<Job>, StoreError> {
        let keys = self.keys(queue);
        let mut conn = self.conn.clone();
        let fields: Vec<(String, String)> = self
            .run(
                redis::cmd("HGETALL")
                    .arg(format!("{}{id}", keys.job_prefix))
                    .query_async(&mut conn),
            )
            .await?;
        Ok(job_from_fields(queue, id, fields))
    }

    /// Up to `limit` dead jobs of `queue`, most recent first.
    pub async fn dead(&self, queue: Queue, limit: usize) -> Result<Vec<Job>, StoreError> {
        let keys = self.keys(queue);
        let mut conn = self.conn.clone();
        let ids: Vec<String> = self
            .run(
                redis::cmd("ZREVRANGE")
                    .arg(&keys.dead)
                    .arg(0)
                    .arg(limit.saturating_sub(1))
                    .query_async(&mut conn),
            )
            .await?;
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(job) = self.get(queue, &id).await? {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }

    /// Sends dead job `id` back to its queue; `false` when it is not dead.
    pub async fn retry_dead(&self, queue: Queue, id: &str) -> Result<bool, StoreError> {
        let keys = self.keys(queue);
        let mut invocation = scripts::RETRY_DEAD.prepare_invoke();
        invocation
            .key(&keys.dead)
            .key(&keys.stream)
            .arg(format!("{}{id}", keys.job_prefix))
            .arg(id);
        let mut conn = self.conn.clone();
        let moved: u8 = self.run(invocation.invoke_async(&mut conn)).await?;
        Ok(moved == 1)
    }

    /// Deletes dead job `id`; `false` when it is not dead.
    pub async fn delete_dead(&self, queue: Queue, id: &str) -> Result<bool, StoreError> {
        let keys = self.keys(queue);
        let mut pipe = redis::pipe();
        pipe.cmd("ZREM").arg(&keys.dead).arg(id);
        pipe.cmd("DEL").arg(format!("{}{id}", keys.job_prefix));
        let mut conn = self.conn.clone();
        let (removed, _): (u8, u8) = self.run(pipe.query_async(&mut conn)).await?;
        Ok(removed == 1)
    }

    /// Pauses or resumes `queue` on every instance.
    pub async fn set_paused(&self, queue: Queue, paused: bool) -> Result<(), StoreError> {
        let keys = self.keys(queue);
        let mut conn = self.conn.clone();
        let mut command = redis::cmd(if paused { "SET" } else { "DEL" });
        command.arg(&keys.paused);
        if paused {
            command.arg(1);
        }
        self.run::<Value>(command.query_async(&mut conn))
            .await
            .map(drop)
    }

    /// Whether `queue` is paused.
    pub async fn is_paused(&self, queue: Queue) -> Result<bool, StoreError> {
        let keys = self.keys(queue);
        let mut conn = self.conn.clone();
        self.run(
            redis::cmd("EXISTS")
                .arg(&keys.paused)
                .query_async(&mut conn),
        )
        .await
    }

    /// Drops completed and failed records of `queue` beyond `retention`; returns how many.
    pub async fn trim(&self, queue: Queue, retention: Retention) -> Result<u64, StoreError> {
        let keys = self.keys(queue);
        let cutoff = unix_ms()
            .saturating_sub(u64::try_from(retention.keep_for.as_millis()).unwrap_or(u64::MAX));
        let mut pipe = redis::pipe();
        for (set, delete_jobs) in [(&keys.completed, "1"), (&keys.failed, "0")] {
            let mut invocation = scripts::TRIM.prepare_invoke();
            invocation
                .key(set)
                .arg(cutoff)
                .arg(retention.keep_count)
                .arg(&keys.job_prefix)
                .arg(delete_jobs);
            pipe.invoke_script(&invocation);
        }
        let (completed, failed): (u64, u64) = self.run_scripts(&pipe, &scripts::TRIM).await?;
        Ok(completed + failed)
    }

    /// Claims the run of schedule `name` at `slot` (Unix seconds) for this instance; `false`
    /// when another instance already has it.
    pub async fn claim_slot(&self, name: &str, slot: u64) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let reply: Option<String> = self
            .run(
                redis::cmd("SET")
                    .arg(format!("{}schedule:{name}:{slot}", self.prefix))
                    .arg(1)
                    .arg("NX")
                    .arg("EX")
                    .arg(86_400 * 2)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(reply.is_some())
    }
}

//! Redis's replies to the job store's stream commands, read into jobs: `XREADGROUP` and
//! `XAUTOCLAIM` entries, `XINFO GROUPS`, and a job's hash. Both RESP2 arrays and RESP3 maps are
//! understood.

use redis::Value;

use super::job::{Job, JobState, Queue};

/// The consumer group every instance reads through.
pub const GROUP: &str = "workers";

/// `(entry id, job id)` pairs of an `XREADGROUP` reply.
pub fn stream_entries(reply: &Value) -> Vec<(String, String)> {
    // [[stream, [[entry, [field, value, …]], …]]] (RESP2), or a map of stream → entries (RESP3).
    match reply {
        Value::Array(streams) => streams
            .iter()
            .filter_map(|stream| match stream {
                Value::Array(pair) => pair.get(1).map(entry_list),
                _ => None,
            })
            .flatten()
            .collect(),
        Value::Map(streams) => streams.iter().flat_map(|(_, e)| entry_list(e)).collect(),
        _ => Vec::new(),
    }
}

/// `(entry id, job id)` pairs of a list of stream entries.
pub fn entry_list(entries: &Value) -> Vec<(String, String)> {
    let Value::Array(entries) = entries else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            let Value::Array(parts) = entry else {
                return None;
            };
            let id: String = redis::from_redis_value_ref(parts.first()?).ok()?;
            let fields: Vec<String> = redis::from_redis_value_ref(parts.get(1)?).ok()?;
            let job = fields
                .chunks(2)
                .find(|pair| pair[0] == "id")?
                .get(1)?
                .clone();
            Some((id, job))
        })
        .collect()
}

/// The group's `last-delivered-id` from an `XINFO GROUPS` reply.
pub fn last_delivered(reply: &Value) -> Option<String> {
    let Value::Array(groups) = reply else {
        return None;
    };
    groups.iter().find_map(|group| {
        let fields: Vec<(String, Value)> = match group {
            Value::Map(pairs) => pairs
                .iter()
                .filter_map(|(k, v)| Some((redis::from_redis_value_ref(k).ok()?, v.clone())))
                .collect(),
            Value::Array(flat) => flat
                .chunks(2)
                .filter_map(|pair| {
                    Some((
                        redis::from_redis_value_ref(&pair[0]).ok()?,
                        pair.get(1)?.clone(),
                    ))
                })
                .collect(),
            _ => return None,
        };
        let named = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let group_name: String = redis::from_redis_value_ref(named("name")?).ok()?;
        if group_name != GROUP {
            return None;
        }
        redis::from_redis_value_ref(named("last-delivered-id")?).ok()
    })
}

/// A job from its hash's fields.
pub fn job_from_fields(queue: Queue, id: &str, fields: Vec<(String, String)>) -> Option<Job> {
    if fields.is_empty() {
        return None;
    }
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    Some(Job {
        id: id.to_owned(),
        queue,
        kind: field("kind")?.to_owned(),
        payload: serde_json::from_str(field("payload")?).ok()?,
        key: field("key").filter(|k| !k.is_empty()).map(str::to_owned),
        attempts: field("attempts").and_then(|a| a.parse().ok()).unwrap_or(0),
        enqueued_at_ms: field("enqueued").and_then(|a| a.parse().ok()).unwrap_or(0),
        state: field("state")
            .and_then(JobState::from_name)
            .unwrap_or(JobState::Waiting),
        last_error: field("last_error").map(str::to_owned),
        trace: field("trace").filter(|t| !t.is_empty()).map(str::to_owned),
    })
}

//! Commands sent together whatever the shape of Redis: one pipeline on one node, one pipeline
//! per hash slot on a cluster (which refuses a pipeline that spans slots).

use futures::future::join_all;
use redis::{Cmd, Pipeline, RedisResult, Value};

use super::RedisConnection;

/// Commands sent together: on one node a single pipeline; on a cluster one pipeline per hash
/// slot, sent concurrently. Answers come back in the order the commands were added.
#[derive(Debug, Default)]
pub struct Batch {
    /// `(slot, pipeline, positions of its commands among all added)`.
    groups: Vec<(u16, Pipeline, Vec<usize>)>,
    /// Whether each added command's answer is wanted.
    wanted: Vec<bool>,
    cluster: bool,
}

impl Batch {
    /// An empty batch for `connection`.
    pub fn for_connection(connection: &RedisConnection) -> Self {
        Self {
            cluster: connection.is_cluster(),
            ..Self::default()
        }
    }

    /// Adds `command`, whose slot is `key`'s (`None`: any slot, as for `PUBLISH`).
    pub fn add(&mut self, key: Option<&str>, command: Cmd) -> &mut Self {
        self.push(key, command, true)
    }

    /// Adds `command` whose answer is not wanted (a failure still fails the batch).
    pub fn add_quiet(&mut self, key: Option<&str>, command: Cmd) -> &mut Self {
        self.push(key, command, false)
    }

    fn push(&mut self, key: Option<&str>, command: Cmd, wanted: bool) -> &mut Self {
        let slot = match key {
            Some(key) if self.cluster => Some(slot_of(key.as_bytes())),
            _ => None,
        };
        let position = self.wanted.len();
        self.wanted.push(wanted);
        let group = match slot {
            None => self.groups.first_mut(),
            Some(slot) => self.groups.iter_mut().find(|(s, _, _)| *s == slot),
        };
        match group {
            Some((_, pipeline, positions)) => {
                pipeline.add_command(command);
                positions.push(position);
            }
            None => {
                let mut pipeline = redis::pipe();
                pipeline.add_command(command);
                self.groups
                    .push((slot.unwrap_or(0), pipeline, vec![position]));
            }
        }
        self
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.wanted.is_empty()
    }

    /// Sends every command; the wanted answers, in the order they were added.
    pub async fn run(&self, connection: &RedisConnection) -> RedisResult<Vec<Value>> {
        let calls = self.groups.iter().map(|(_, pipeline, _)| {
            let mut connection = connection.clone();
            async move { pipeline.query_async::<Vec<Value>>(&mut connection).await }
        });
        let mut answers: Vec<Option<Value>> = vec![None; self.wanted.len()];
        for ((_, _, positions), answer) in self.groups.iter().zip(join_all(calls).await) {
            for (&position, value) in positions.iter().zip(answer?) {
                answers[position] = Some(value);
            }
        }
        Ok(answers
            .into_iter()
            .zip(&self.wanted)
            .filter(|(_, wanted)| **wanted)
            .map(|(value, _)| value.unwrap_or(Value::Nil))
            .collect())
    }
}

/// The cluster hash slot of `key`: CRC16 (XMODEM) of its hash tag (the text between the
/// first `{` and the next `}`, when not empty) or of the whole key, modulo 16384.
pub fn slot_of(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % 16384
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_cluster_specification() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(
            slot_of(b"123456789"),
            0x31C3,
            "the specification's CRC16 check value"
        );
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
        assert_eq!(slot_of(b"foo{}{bar}"), slot_of(b"foo{}{bar}"));
        assert_ne!(
            slot_of(b"foo{}{bar}"),
            slot_of(b"bar"),
            "an empty tag hashes the whole key"
        );
        assert_eq!(slot_of(b"foo{{bar}}zap"), slot_of(b"{bar"));
    }
}

//! What was invalidated while loads ran. A load notes where the log stood when it started; when
//! it finishes, its value is stored only if nothing invalidated since then names its key or one
//! of its tags. A write to one task therefore never stops an unrelated page, loaded at the same
//! moment, from being stored, and a load that may have read the old data never undoes the
//! invalidation.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Invalidations remembered; a load that outlived more of them does not store its value.
const REMEMBERED: usize = 512;

/// One invalidation.
#[derive(Debug)]
enum Doomed {
    Everything,
    Named {
        tags: Vec<String>,
        keys: Vec<String>,
    },
}

#[derive(Debug, Default)]
struct Log {
    /// The sequence number of the next invalidation.
    next: u64,
    /// The latest invalidations, oldest first, with their sequence numbers.
    recent: VecDeque<(u64, Doomed)>,
}

/// The log of recent invalidations.
#[derive(Debug, Default)]
pub struct Invalidations {
    log: Mutex<Log>,
}

impl Invalidations {
    /// Where the log stands: pass it to [`Self::spares`] when the load is done.
    pub fn mark(&self) -> u64 {
        self.lock().next
    }

    /// Records an invalidation of `tags` and `keys`.
    pub fn record(&self, tags: &[String], keys: &[String]) {
        self.push(Doomed::Named {
            tags: tags.to_vec(),
            keys: keys.to_vec(),
        });
    }

    /// Records that everything was invalidated.
    pub fn record_everything(&self) {
        self.push(Doomed::Everything);
    }

    /// Whether no invalidation since `mark` names `key` or one of `tags`.
    pub fn spares(&self, mark: u64, key: &str, tags: &[String]) -> bool {
        let log = self.lock();
        if log.next == mark {
            return true;
        }
        // Forgotten invalidations may have named it.
        if log.recent.front().is_none_or(|(oldest, _)| *oldest > mark) {
            return false;
        }
        log.recent
            .iter()
            .filter(|(sequence, _)| *sequence >= mark)
            .all(|(_, doomed)| match doomed {
                Doomed::Everything => false,
                Doomed::Named {
                    tags: doomed_tags,
                    keys,
                } => {
                    !keys.iter().any(|k| k == key) && !tags.iter().any(|t| doomed_tags.contains(t))
                }
            })
    }

    fn push(&self, doomed: Doomed) {
        let mut log = self.lock();
        let sequence = log.next;
        log.next += 1;
        if log.recent.len() == REMEMBERED {
            log.recent.pop_front();
        }
        log.recent.push_back((sequence, doomed));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn only_what_names_the_load_stops_it_from_storing() {
        let log = Invalidations::default();
        let mark = log.mark();
        assert!(log.spares(mark, "GET /a", &strings(&["task:1"])));
        log.record(&strings(&["task:2"]), &strings(&["GET /b"]));
        assert!(
            log.spares(mark, "GET /a", &strings(&["task:1"])),
            "unrelated"
        );
        assert!(!log.spares(mark, "GET /b", &[]), "its key");
        assert!(
            !log.spares(mark, "GET /c", &strings(&["board", "task:2"])),
            "a tag"
        );
        let later = log.mark();
        assert!(log.spares(later, "GET /b", &[]), "before it started");
        log.record_everything();
        assert!(!log.spares(later, "GET /a", &[]));
    }

    #[test]
    fn a_load_that_outlived_what_is_remembered_does_not_store() {
        let log = Invalidations::default();
        let mark = log.mark();
        for n in 0..=REMEMBERED {
            log.record(&[], &[format!("GET /{n}")]);
        }
        assert!(!log.spares(mark, "GET /unrelated", &[]));
        let recent = log.mark();
        log.record(&[], &strings(&["GET /x"]));
        assert!(log.spares(recent, "GET /unrelated", &[]));
    }
}

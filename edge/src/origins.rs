//! The origins cache misses go to: `ORIGIN_URL` names one, or several separated by commas.
//!
//! Each request starts at the next origin in turn (round robin within the isolate). A `GET` or
//! `HEAD` whose connection fails (refused, reset: the request never got an answer) is sent to
//! the next origin, and so on through every origin, within the request's deadline; other
//! methods are never sent twice. An origin whose connection failed rests for [`REST`]: this
//! isolate's next requests start elsewhere, and come back to it only when every origin rests.
//! Back from its rest, an origin is on probation: it gets reads (`GET`, `HEAD`) but no writes
//! until it has answered one, so a write never tests whether an origin is up again.
//! With a single origin, a failed `GET` or `HEAD` is sent once more on a new connection (a
//! kept-alive connection the origin had closed).

use std::cell::{Cell, RefCell};
use std::time::Duration;

use worker::Url;

/// How long an origin whose connection failed is passed over.
pub const REST: Duration = Duration::from_secs(10);

/// The configured origins and this isolate's view of them.
#[derive(Debug)]
pub struct Origins {
    urls: Vec<Url>,
    /// The origin the next request starts at.
    next: Cell<usize>,
    /// Per origin, until when (ms since the epoch) it rests.
    resting_until: RefCell<Vec<u64>>,
    /// Per origin, whether it failed and has not answered since.
    on_probation: RefCell<Vec<bool>>,
}

impl Origins {
    /// The origins of `ORIGIN_URL`'s value: absolute `http` or `https` URLs separated by commas.
    pub fn parse(text: &str) -> Result<Self, String> {
        let urls = text
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| {
                let parsed = Url::parse(url).map_err(|error| format!("{url:?}: {error}"))?;
                if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                    return Err(format!("{url:?}: not an http(s) URL with a host"));
                }
                Ok(parsed)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if urls.is_empty() {
            return Err("no URL".to_owned());
        }
        Ok(Self {
            resting_until: RefCell::new(vec![0; urls.len()]),
            on_probation: RefCell::new(vec![false; urls.len()]),
            next: Cell::new(0),
            urls,
        })
    }

    /// The first origin configured.
    pub fn primary(&self) -> &Url {
        &self.urls[0]
    }

    /// How many origins there are.
    pub fn len(&self) -> usize {
        self.urls.len()
    }

    /// Whether there are none (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// The origin a new request goes to at `now_ms`: the next in turn that is not resting and,
    /// for a write (`idempotent` false), not on probation either; the next in turn when none
    /// qualifies.
    pub fn pick(&self, now_ms: u64, idempotent: bool) -> &Url {
        let count = self.urls.len();
        let start = self.next.get() % count;
        self.next.set((start + 1) % count);
        let (resting, probation) = (self.resting_until.borrow(), self.on_probation.borrow());
        let chosen = (0..count)
            .map(|offset| (start + offset) % count)
            .find(|&index| resting[index] <= now_ms && (idempotent || !probation[index]))
            .unwrap_or(start);
        &self.urls[chosen]
    }

    /// Records that the origin `url` belongs to answered: it is off probation.
    pub fn answered(&self, url: &Url) {
        if let Some(index) = self.index_of(url) {
            if self.on_probation.borrow()[index] {
                self.on_probation.borrow_mut()[index] = false;
            }
        }
    }

    /// Rests the origin `url` belongs to from `now_ms` (it announced that it drains), unless it
    /// is the only one.
    pub fn rest(&self, url: &Url, now_ms: u64) {
        if let (Some(index), true) = (self.index_of(url), self.urls.len() > 1) {
            self.resting_until.borrow_mut()[index] = now_ms + REST.as_millis() as u64;
            self.on_probation.borrow_mut()[index] = true;
        }
    }

    /// Records that the connection to `failed` failed at `now_ms`, and gives the origins to
    /// try next, in order: every other origin, those not resting first, or `failed` itself
    /// when it is the only one.
    pub fn after_failure(&self, failed: &Url, now_ms: u64) -> Vec<Url> {
        let count = self.urls.len();
        let Some(index) = self.index_of(failed) else {
            return Vec::new();
        };
        if count == 1 {
            return vec![failed.clone()];
        }
        self.on_probation.borrow_mut()[index] = true;
        let mut resting = self.resting_until.borrow_mut();
        resting[index] = now_ms + REST.as_millis() as u64;
        let mut others: Vec<usize> = (1..count).map(|offset| (index + offset) % count).collect();
        others.sort_by_key(|&other| resting[other] > now_ms);
        others
            .into_iter()
            .map(|other| self.urls[other].clone())
            .collect()
    }

    /// Which origin `url` (a request URL sent to it) belongs to.
    fn index_of(&self, url: &Url) -> Option<usize> {
        self.urls.iter().position(|origin| {
            origin.scheme() == url.scheme()
                && origin.host_str() == url.host_str()
                && origin.port_or_known_default() == url.port_or_known_default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Origins {
        Origins::parse("http://a:8080, http://b:8080 ,http://c:8080").expect("three origins")
    }

    fn hosts(urls: &[Url]) -> Vec<&str> {
        urls.iter()
            .map(|url| url.host_str().expect("a host"))
            .collect()
    }

    #[test]
    fn requests_take_turns() {
        let origins = three();
        let picked: Vec<String> = (0..4).map(|_| origins.pick(0, true).to_string()).collect();
        assert_eq!(
            picked,
            [
                "http://a:8080/",
                "http://b:8080/",
                "http://c:8080/",
                "http://a:8080/"
            ]
        );
    }

    #[test]
    fn a_failed_origin_rests_and_the_others_are_tried_in_turn() {
        let origins = three();
        let failed = Url::parse("http://b:8080/api/tasks/1?x=1").expect("a URL");
        assert_eq!(hosts(&origins.after_failure(&failed, 1_000)), ["c", "a"]);
        let picked: Vec<&str> = (0..4)
            .map(|_| origins.pick(2_000, true).host_str().expect("a host"))
            .collect();
        assert_eq!(
            picked,
            ["a", "c", "c", "a"],
            "b is passed over while it rests"
        );
        let later = 1_000 + REST.as_millis() as u64;
        let picked: Vec<&str> = (0..3)
            .map(|_| origins.pick(later, true).host_str().expect("a host"))
            .collect();
        assert!(picked.contains(&"b"), "back after its rest: {picked:?}");
    }

    #[test]
    fn resting_origins_are_tried_last_and_a_single_origin_is_tried_again() {
        let origins = three();
        let url = |host: &str| Url::parse(&format!("http://{host}:8080/")).expect("a URL");
        origins.after_failure(&url("a"), 0);
        assert_eq!(hosts(&origins.after_failure(&url("b"), 0)), ["c", "a"]);
        assert_eq!(origins.pick(1, true).host_str(), Some("c"));
        let single = Origins::parse("https://origin.example.com").expect("one origin");
        let failed = Url::parse("https://origin.example.com/x").expect("a URL");
        assert_eq!(
            hosts(&single.after_failure(&failed, 0)),
            ["origin.example.com"]
        );
        assert_eq!(single.len(), 1);
    }

    #[test]
    fn a_draining_origin_rests_unless_it_is_the_only_one() {
        let origins = three();
        origins.rest(&Url::parse("http://a:8080/x").expect("a URL"), 0);
        let picked: Vec<&str> = (0..3)
            .map(|_| origins.pick(1, true).host_str().expect("a host"))
            .collect();
        assert_eq!(picked, ["b", "b", "c"]);
        let single = Origins::parse("http://a:8080").expect("one origin");
        single.rest(&Url::parse("http://a:8080/").expect("a URL"), 0);
        assert_eq!(single.pick(1, true).host_str(), Some("a"));
    }

    #[test]
    fn back_from_its_rest_an_origin_gets_writes_only_once_it_has_answered() {
        let origins = three();
        let b = Url::parse("http://b:8080/").expect("a URL");
        origins.after_failure(&b, 0);
        let later = REST.as_millis() as u64 + 1;
        let writes: Vec<&str> = (0..3)
            .map(|_| origins.pick(later, false).host_str().expect("a host"))
            .collect();
        assert_eq!(writes, ["a", "c", "c"], "no write tests b");
        assert_eq!(origins.pick(later, true).host_str(), Some("a"));
        assert_eq!(origins.pick(later, true).host_str(), Some("b"), "reads do");
        origins.answered(&b);
        let writes: Vec<&str> = (0..3)
            .map(|_| origins.pick(later, false).host_str().expect("a host"))
            .collect();
        assert!(writes.contains(&"b"), "once it answered: {writes:?}");
    }

    #[test]
    fn every_url_must_be_absolute_http() {
        for bad in ["", " , ", "origin:8080", "ftp://a", "http://a, /relative"] {
            assert!(Origins::parse(bad).is_err(), "{bad:?}");
        }
    }
}

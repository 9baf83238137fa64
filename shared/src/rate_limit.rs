//! Rate-limit tiers, shared by the origin's limiter, the edge and the Terraform rules.

use serde::{Deserialize, Serialize};

/// A budget of `max_requests` per client within any window of `window_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub max_requests: u32,
    /// The window length in seconds.
    pub window_seconds: u32,
}

impl RateLimit {
    /// The steady-state spacing between requests, in milliseconds (GCRA's emission interval).
    pub fn emission_interval_ms(&self) -> u64 {
        u64::from(self.window_seconds) * 1000 / u64::from(self.max_requests.max(1))
    }
}

/// Which budget a route draws from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RateLimitTier {
    /// Ordinary clients: 100 requests per 15 minutes.
    #[default]
    Default,
    /// Crawler endpoints, which fetch outside URLs on a client's behalf (adding a link to a
    /// task): 10 requests per 15 minutes. Chosen by route (the policy's `write_rate_limit`),
    /// never by `User-Agent`: curl, scripts and SDKs get the ordinary budget.
    Crawler,
    /// Sensitive routes (login, admin, writes): 20 requests per minute.
    Aggressive,
    /// Not limited (health checks).
    Unlimited,
}

impl RateLimitTier {
    /// Every tier, for iteration in generators and metrics.
    pub const ALL: [Self; 4] = [
        Self::Default,
        Self::Crawler,
        Self::Aggressive,
        Self::Unlimited,
    ];

    /// The tier's name, used in metric labels and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Crawler => "crawler",
            Self::Aggressive => "aggressive",
            Self::Unlimited => "unlimited",
        }
    }

    /// The tier's budget, `None` when unlimited.
    pub fn limit(self) -> Option<RateLimit> {
        match self {
            Self::Default => Some(RateLimit {
                max_requests: 100,
                window_seconds: 900,
            }),
            Self::Crawler => Some(RateLimit {
                max_requests: 10,
                window_seconds: 900,
            }),
            Self::Aggressive => Some(RateLimit {
                max_requests: 20,
                window_seconds: 60,
            }),
            Self::Unlimited => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_have_the_documented_budgets() {
        assert_eq!(
            RateLimitTier::Default.limit(),
            Some(RateLimit {
                max_requests: 100,
                window_seconds: 900
            })
        );
        assert_eq!(
            RateLimitTier::Crawler.limit(),
            Some(RateLimit {
                max_requests: 10,
                window_seconds: 900
            })
        );
        assert_eq!(
            RateLimitTier::Aggressive.limit(),
            Some(RateLimit {
                max_requests: 20,
                window_seconds: 60
            })
        );
        assert_eq!(RateLimitTier::Unlimited.limit(), None);
        assert_eq!(
            RateLimitTier::Aggressive
                .limit()
                .map(|l| l.emission_interval_ms()),
            Some(3000)
        );
    }

    #[test]
    fn tier_names_round_trip_through_serde() {
        for tier in RateLimitTier::ALL {
            let json = serde_json::to_string(&tier).expect("serializable");
            assert_eq!(json, format!("\"{}\"", tier.as_str()));
            assert_eq!(
                serde_json::from_str::<RateLimitTier>(&json).expect("parses"),
                tier
            );
        }
    }
}

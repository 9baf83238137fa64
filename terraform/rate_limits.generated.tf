# Generated from shared/policy.toml by `cargo run -p deploy -- terraform`.
# Do not edit: change the policy and run the command again (a test fails while they differ).

locals {
  rate_limit_rules = [
    {
      ref         = "rampart_rate_limit_aggressive"
      description = "aggressive tier: 20 requests per 60 s per client"
      expression  = "((http.request.uri.path eq \"/status\" or http.request.uri.path strict wildcard \"/status/*\") or (http.request.uri.path eq \"/api/admin\" or http.request.uri.path strict wildcard \"/api/admin/*\") or (http.request.uri.path eq \"/api/cache\" or http.request.uri.path strict wildcard \"/api/cache/*\") or (http.request.uri.path eq \"/api/auth\" or http.request.uri.path strict wildcard \"/api/auth/*\"))"
      action      = "block"
      ratelimit = {
        characteristics = [
          "cf.colo.id",
          "ip.src"
        ]
        period              = min(60, var.rate_limit_max_period)
        requests_per_period = max(1, floor(20 * min(60, var.rate_limit_max_period) / 60))
        mitigation_timeout  = min(60, var.rate_limit_max_period)
      }
      enabled = true
    },
    {
      ref         = "rampart_rate_limit_default"
      description = "default tier: 100 requests per 900 s per client, counting only requests that reach the origin"
      expression  = "not (((http.request.uri.path eq \"/health\" or http.request.uri.path strict wildcard \"/health/*\") or http.request.uri.path eq \"/metrics\" or (http.request.uri.path eq \"/status\" or http.request.uri.path strict wildcard \"/status/*\") or (http.request.uri.path eq \"/api/admin\" or http.request.uri.path strict wildcard \"/api/admin/*\") or (http.request.uri.path eq \"/api/cache\" or http.request.uri.path strict wildcard \"/api/cache/*\") or (http.request.uri.path eq \"/api/auth\" or http.request.uri.path strict wildcard \"/api/auth/*\")))"
      action      = "block"
      ratelimit = {
        characteristics = [
          "cf.colo.id",
          "ip.src"
        ]
        period              = min(600, var.rate_limit_max_period)
        requests_per_period = max(1, floor(100 * min(600, var.rate_limit_max_period) / 900))
        mitigation_timeout  = min(600, var.rate_limit_max_period)
        requests_to_origin  = true
      }
      enabled = true
    },
    {
      ref         = "rampart_rate_limit_crawler"
      description = "crawler tier: 10 requests per 900 s per client, counting only requests that reach the origin"
      expression  = "((http.request.uri.path strict wildcard \"/api/tasks/*/links\" and not (http.request.uri.path strict wildcard \"/api/tasks/*/*/links\")) and not http.request.method in {\"GET\" \"HEAD\" \"OPTIONS\"})"
      action      = "block"
      ratelimit = {
        characteristics = [
          "cf.colo.id",
          "ip.src"
        ]
        period              = min(600, var.rate_limit_max_period)
        requests_per_period = max(1, floor(10 * min(600, var.rate_limit_max_period) / 900))
        mitigation_timeout  = min(600, var.rate_limit_max_period)
        requests_to_origin  = true
      }
      enabled = true
    }
  ]
}

resource "cloudflare_ruleset" "rate_limits" {
  zone_id     = var.zone_id
  name        = "Rampart rate limits"
  description = "Generated from shared/policy.toml"
  kind        = "zone"
  phase       = "http_ratelimit"
  rules       = slice(local.rate_limit_rules, 0, min(var.rate_limit_rules, 3))
}

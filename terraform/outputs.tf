output "edge_url" {
  description = "Where the site is served through the edge Worker."
  value       = "https://${var.hostname}/"
}

output "origin_url" {
  description = "Where the edge forwards cache misses."
  value       = local.origin_url
}

output "worker_version_id" {
  description = "The deployed Worker version (roll back by deploying an earlier one)."
  value       = cloudflare_worker_version.edge.id
}

output "ruleset_ids" {
  description = "The zone rulesets generated from shared/policy.toml."
  value = {
    cache       = cloudflare_ruleset.cache_rules.id
    compression = cloudflare_ruleset.compression_rules.id
    rate_limits = cloudflare_ruleset.rate_limits.id
  }
}

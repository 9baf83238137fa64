# The three values every deployment fills in: account_id, zone_id and hostname (in
# terraform.tfvars, or TF_VAR_… in the environment). Everything else has a working default.

variable "account_id" {
  description = "Cloudflare account id (Dashboard → Workers & Pages → Account details)."
  type        = string
}

variable "zone_id" {
  description = "Id of the zone that serves the site (Dashboard → the domain → Overview)."
  type        = string
}

variable "hostname" {
  description = "Public hostname the edge Worker is routed on, e.g. app.example.com."
  type        = string
}

variable "origin_url" {
  description = "Base URL the edge forwards cache misses to. Default: https://origin.<hostname>."
  type        = string
  default     = null
}

variable "worker_name" {
  description = "Name of the edge Worker (wrangler.toml's production name)."
  type        = string
  default     = "rampart-edge"
}

variable "worker_build_dir" {
  description = "Folder holding the built Worker (index.js, index_bg.wasm): run scripts/build-edge.sh first."
  type        = string
  default     = "../edge/build"
}

variable "compatibility_date" {
  description = "Workers runtime compatibility date; keep equal to wrangler.toml's."
  type        = string
  default     = "2026-04-01"
}

variable "worker_cpu_ms" {
  description = "CPU limit per request in ms (Workers Paid; leave null on Workers Free, which has a fixed 10 ms)."
  type        = number
  default     = null
}

variable "origin_auth_token" {
  description = "Shared secret the edge sends to the origin (ORIGIN_AUTH_TOKEN); empty disables it."
  type        = string
  default     = ""
  sensitive   = true
}

variable "edge_purge_token" {
  description = "Bearer token for the edge's POST /__rampart/purge (EDGE_PURGE_TOKEN); empty disables purging."
  type        = string
  default     = ""
  sensitive   = true
}

variable "image_signing_key" {
  description = "HMAC key for signed image option strings (IMAGE_SIGNING_KEY); empty accepts unsigned options."
  type        = string
  default     = ""
  sensitive   = true
}

variable "admin_token" {
  description = "The origin's admin token (ADMIN_TOKEN): requests bearing it get the edge's Server-Timing; empty shows it only on routes whose policy sets server_timing."
  type        = string
  default     = ""
  sensitive   = true
}

variable "rate_limit_rules" {
  description = "How many of the generated rate-limit rules the plan allows: Free 1, Pro 2, Business 5, Enterprise 100."
  type        = number
  default     = 1
}

variable "rate_limit_max_period" {
  description = "Longest rate-limit period the plan allows, in seconds: Free 10, Pro 60, Business 600, Enterprise 3600."
  type        = number
  default     = 10

  validation {
    condition     = contains([10, 60, 120, 300, 600, 3600], var.rate_limit_max_period)
    error_message = "Cloudflare's rate-limit periods are 10, 60, 120, 300, 600 and 3600 seconds."
  }
}

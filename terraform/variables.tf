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
  description = "Base URL the edge forwards cache misses to, e.g. https://origin.example.com."
  type        = string
}

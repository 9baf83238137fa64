# Zone-wide settings: HTTP/3, 103 Early Hints, TLS 1.2 at least (1.3 on), HTTPS only, and Smart
# Tiered Cache, so that a miss in one data centre asks an upper-tier data centre before the origin.

locals {
  zone_settings = {
    http3            = "on"
    early_hints      = "on"
    min_tls_version  = "1.2"
    tls_1_3          = "on"
    always_use_https = "on"
  }
}

resource "cloudflare_zone_setting" "rampart" {
  for_each = local.zone_settings

  zone_id    = var.zone_id
  setting_id = each.key
  value      = each.value
}

resource "cloudflare_tiered_cache" "smart" {
  zone_id = var.zone_id
  value   = "on"
}

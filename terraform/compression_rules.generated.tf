# Generated from shared/policy.toml by `cargo run -p deploy -- terraform`.
# Do not edit: change the policy and run the command again (a test fails while they differ).

resource "cloudflare_ruleset" "compression_rules" {
  zone_id     = var.zone_id
  name        = "Rampart response compression"
  description = "Generated from shared/policy.toml"
  kind        = "zone"
  phase       = "http_response_compression"
  rules = [
    {
      ref         = "rampart_compress_off"
      description = "routes with compress = false (already-compressed media, health)"
      expression  = "((http.request.uri.path eq \"/health\" or http.request.uri.path strict wildcard \"/health/*\") or (http.request.uri.path eq \"/cdn-cgi/image\" or http.request.uri.path strict wildcard \"/cdn-cgi/image/*\") or (http.request.uri.path eq \"/images\" or http.request.uri.path strict wildcard \"/images/*\"))"
      action      = "compress_response"
      action_parameters = {
        algorithms = [
          {
            name = "none"
          }
        ]
      }
      enabled = true
    },
    {
      ref         = "rampart_compress"
      description = "everything else: brotli, else gzip"
      expression  = "not (((http.request.uri.path eq \"/health\" or http.request.uri.path strict wildcard \"/health/*\") or (http.request.uri.path eq \"/cdn-cgi/image\" or http.request.uri.path strict wildcard \"/cdn-cgi/image/*\") or (http.request.uri.path eq \"/images\" or http.request.uri.path strict wildcard \"/images/*\")))"
      action      = "compress_response"
      action_parameters = {
        algorithms = [
          {
            name = "brotli"
          },
          {
            name = "gzip"
          }
        ]
      }
      enabled = true
    }
  ]
}

# The edge Worker: the script (cloudflare_worker), one immutable version holding the JS and wasm
# modules that scripts/build-edge.sh writes (cloudflare_worker_version), a deployment sending all
# traffic to that version (cloudflare_workers_deployment), and the route on the public hostname.

locals {
  origin_url = coalesce(var.origin_url, "https://origin.${var.hostname}")

  worker_vars = {
    ORIGIN_URL        = local.origin_url
    ORIGIN_TIMEOUT_MS = "10000"
    EXPOSE_CACHE_KEY  = "false"
    # Tracing: the share of new traces recorded, and the OTLP/HTTP collector (empty: no export).
    TRACE_SAMPLE_RATE           = "0.01"
    OTEL_EXPORTER_OTLP_ENDPOINT = ""
  }

  worker_secrets = {
    ORIGIN_AUTH_TOKEN = var.origin_auth_token
    EDGE_PURGE_TOKEN  = var.edge_purge_token
    IMAGE_SIGNING_KEY = var.image_signing_key
    ADMIN_TOKEN       = var.admin_token
  }
}

resource "cloudflare_worker" "edge" {
  account_id = var.account_id
  name       = var.worker_name

  observability = {
    enabled            = true
    head_sampling_rate = 1
  }

  subdomain = {
    enabled = false
  }
}

resource "cloudflare_worker_version" "edge" {
  account_id         = var.account_id
  worker_id          = cloudflare_worker.edge.id
  compatibility_date = var.compatibility_date
  main_module        = "index.js"

  modules = [
    {
      name         = "index.js"
      content_type = "application/javascript+module"
      content_file = "${var.worker_build_dir}/index.js"
    },
    {
      name         = "index_bg.wasm"
      content_type = "application/wasm"
      content_file = "${var.worker_build_dir}/index_bg.wasm"
    },
  ]

  bindings = concat(
    [for name, value in local.worker_vars : { name = name, type = "plain_text", text = value }],
    [for name, value in local.worker_secrets : { name = name, type = "secret_text", text = value } if value != ""],
  )

  limits = var.worker_cpu_ms == null ? null : { cpu_ms = var.worker_cpu_ms }
}

resource "cloudflare_workers_deployment" "edge" {
  account_id  = var.account_id
  script_name = cloudflare_worker.edge.name
  strategy    = "percentage"

  versions = [
    {
      version_id = cloudflare_worker_version.edge.id
      percentage = 100
    },
  ]
}

resource "cloudflare_workers_route" "edge" {
  zone_id = var.zone_id
  pattern = "${var.hostname}/*"
  script  = cloudflare_worker.edge.name

  depends_on = [cloudflare_workers_deployment.edge]
}

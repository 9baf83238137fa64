# Generated from shared/policy.toml by `cargo run -p deploy -- terraform`.
# Do not edit: change the policy and run the command again (a test fails while they differ).

locals {
  rampart_cache_key = {
    ignore_query_strings_order = true
    cache_deception_armor      = true
    custom_key = {
      query_string = {
        exclude = {
          list = [
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "utm_term",
            "utm_content",
            "utm_id",
            "utm_source_platform",
            "fbclid",
            "gclid",
            "dclid",
            "gbraid",
            "wbraid",
            "msclkid",
            "mc_cid",
            "mc_eid",
            "_ga",
            "_gl",
            "yclid",
            "igshid",
            "twclid",
            "ttclid"
          ]
        }
      }
    }
  }
}

resource "cloudflare_ruleset" "cache_rules" {
  zone_id     = var.zone_id
  name        = "Rampart cache rules"
  description = "Generated from shared/policy.toml"
  kind        = "zone"
  phase       = "http_request_cache_settings"
  rules = [
    {
      ref         = "rampart_cache_html"
      description = "html (/*): edge 300s, browser 60s, stale-while-revalidate 600s"
      expression  = "true"
      action      = "set_cache_settings"
      action_parameters = {
        cache = true
        edge_ttl = {
          mode    = "override_origin"
          default = 300
          status_code_ttl = [
            {
              status_code_range = {
                from = 500
                to   = 599
              }
              value = -1
            }
          ]
        }
        browser_ttl = {
          mode    = "override_origin"
          default = 60
        }
        serve_stale = {
          disable_stale_while_updating = false
        }
        respect_strong_etags = true
        cache_key            = local.rampart_cache_key
      }
      enabled = true
    },
    {
      ref         = "rampart_cache_task_page"
      description = "task-page (/tasks/{id}): edge 300s, browser 60s, stale-while-revalidate 600s"
      expression  = "(http.request.uri.path strict wildcard \"/tasks/*\" and not (http.request.uri.path strict wildcard \"/tasks/*/*\"))"
      action      = "set_cache_settings"
      action_parameters = {
        cache = true
        edge_ttl = {
          mode    = "override_origin"
          default = 300
          status_code_ttl = [
            {
              status_code_range = {
                from = 500
                to   = 599
              }
              value = -1
            }
          ]
        }
        browser_ttl = {
          mode    = "override_origin"
          default = 60
        }
        serve_stale = {
          disable_stale_while_updating = false
        }
        respect_strong_etags = true
        cache_key            = local.rampart_cache_key
      }
      enabled = true
    },
    {
      ref         = "rampart_cache_api"
      description = "api (/api/*): edge 300s, browser 60s, stale-while-revalidate 60s"
      expression  = "(http.request.uri.path eq \"/api\" or http.request.uri.path strict wildcard \"/api/*\")"
      action      = "set_cache_settings"
      action_parameters = {
        cache = true
        edge_ttl = {
          mode    = "override_origin"
          default = 300
          status_code_ttl = [
            {
              status_code_range = {
                from = 500
                to   = 599
              }
              value = -1
            }
          ]
        }
        browser_ttl = {
          mode    = "override_origin"
          default = 60
        }
        serve_stale = {
          disable_stale_while_updating = false
        }
        respect_strong_etags = true
        cache_key            = local.rampart_cache_key
      }
      enabled = true
    },
    {
      ref         = "rampart_cache_stats"
      description = "stats (/api/stats): edge 300s, browser 60s, stale-while-revalidate 300s"
      expression  = "http.request.uri.path eq \"/api/stats\""
      action      = "set_cache_settings"
      action_parameters = {
        cache = true
        edge_ttl = {
          mode    = "override_origin"
          default = 300
          status_code_ttl = [
            {
              status_code_range = {
                from = 500
                to   = 599
              }
              value = -1
            }
          ]
        }
        browser_ttl = {
          mode    = "override_origin"
          default = 60
        }
        serve_stale = {
          disable_stale_while_updating = false
        }
        respect_strong_etags = true
        cache_key            = local.rampart_cache_key
      }
      enabled = true
    },
    {
      ref         = "rampart_cache_tasks"
      description = "tasks (/api/tasks): edge 300s, browser 60s, stale-while-revalidate 60s"
      expression  = "http.request.uri.path eq \"/api/tasks\""
      action      = "set_cache_settings"
      action_parameters = {
        cache = true
        edge_ttl = {
          mode    = "override_origin"
          default = 300
          status_code_ttl = [
            {
              status_code_range = {
                from = 500
                to   = 599
              }
              value = -1
            }
          ]
        }
        browser_ttl = {
          mode    = "override_origin"
          default = 60
        }
        serve_stale = {
          disable_stale_while_updating = false
        }
        respect_strong_etags = true
        cache_key            = local.rampart_cache_key
      }
      enabled = true
    },
    {
      ref         = "rampart_cache_task"
      description = "task (/api/tasks/{id}): edge 300s, browser 60s, stale-while-revalidate 60s"
      expression  = "(http.request.uri.path strict wildcard \"/api/tasks/*\" and not (http.request.uri.path strict wildcard \"/api/tasks/*/*\"))"
      action      = "set_cache_settings"
      action_parameters = {
        cache = true
        edge_ttl = {
          mode    = "override_origin"
          default = 300
          status_code_ttl = [
            {
              status_code_range = {
                from = 500
                to   = 599
              }
              value = -1
            }
          ]
        }
        browser_ttl = {
          mode    = "override_origin"
          default = 60
        }
        serve_stale = {
          disable_stale_while_updating = false
        }
        respect_strong_etags = true
        cache_key            = local.rampart_cache_key
      }
      enabled = true
    },
    {
      ref         = "rampart_cache_task_link"
      description = "task-link (/api/tasks/{id}/links/{link}): edge 300s, browser 0s, stale-while-revalidate 0s"
      expression  = "(http.request.uri.path strict wildcard \"/api/tasks/*/links/*\" and not (http.request.uri.path strict wildcard \"/api/tasks/*/*/links/*\") and not (http.request.uri.path strict wildcard \"/api/tasks/*/links/*/*\"))"
      action      = "set_cache_settings"
      action_parameters = {
        cache = true
        edge_ttl = {
          mode    = "override_origin"
          default = 300
          status_code_ttl = [
            {
              status_code_range = {
                from = 500
                to   = 599
              }
              value = -1
            }
          ]
        }
        browser_ttl = {
          mode    = "override_origin"
          default = 0
        }
        serve_stale = {
          disable_stale_while_updating = true
        }
        respect_strong_etags = true
        cache_key            = local.rampart_cache_key
      }
      enabled = true
    },
    {
      ref         = "rampart_cache_task_links"
      description = "task-links (/api/tasks/{id}/links): edge 300s, browser 60s, stale-while-revalidate 60s"
      expression  = "(http.request.uri.path strict wildcard \"/api/tasks/*/links\" and not (http.request.uri.path strict wildcard \"/api/tasks/*/*/links\"))"
      action      = "set_cache_settings"
      action_parameters = {
        cache = true
        edge_ttl = {
          mode    = "override_origin"
          default = 300
          status_code_ttl = [
            {
              status_code_range = {
                from = 500
                to   = 599
              }
              value = -1
            }
          ]
        }
        browser_ttl = {
          mode    = "override_origin"
          default = 60
        }
        serve_stale = {
          disable_stale_while_updating = false
        }
        respect_strong_etags = true
        cache_key            = local.rampart_cache_key
      }
      enabled = true
    },
    {
      ref         = "rampart_cache_task_comments"
      description = "task-comments (/api/tasks/{id}/comments): edge 300s, browser 60s, stale-while-revalidate 60s"
      expression  = "(http.request.uri.path strict wildcard \"/api/tasks/*/comments\" and not (http.request.uri.path strict wildcard \"/api/tasks/*/*/comments\"))"
      action      = "set_cache_settings"
      action_parameters = {
        cache = true
        edge_ttl = {
          mode    = "override_origin"
          default = 300
          status_code_ttl = [
            {
              status_code_range = {
                from = 500
                to   = 599
              }
              value = -1
            }
          ]
        }
        browser_ttl = {
          mode    = "override_origin"
          default = 60
        }
        serve_stale = {
          disable_stale_while_updating = false
        }
        respect_strong_etags = true
        cache_key            = local.rampart_cache_key
      }
      enabled = true
    },
    {
      ref         = "rampart_cache_popular_tasks"
      description = "popular-tasks (/api/tasks/popular): edge 300s, browser 60s, stale-while-revalidate 60s"
      expression  = "http.request.uri.path eq \"/api/tasks/popular\""
      action      = "set_cache_settings"
      action_parameters = {
        cache = true
        edge_ttl = {
          mode    = "override_origin"
          default = 300
          status_code_ttl = [
            {
              status_code_range = {
                from = 500
                to   = 599
              }
              value = -1
            }
          ]
        }
        browser_ttl = {
          mode    = "override_origin"
          default = 60
        }
        serve_stale = {
          disable_stale_while_updating = false
        }
        respect_strong_etags = true
        cache_key            = local.rampart_cache_key
      }
      enabled = true
    },
    {
      ref         = "rampart_cache_audit_log"
      description = "audit-log (/api/events/*): bypass"
      expression  = "(http.request.uri.path eq \"/api/events\" or http.request.uri.path strict wildcard \"/api/events/*\")"
      action      = "set_cache_settings"
      action_parameters = {
        cache = false
      }
      enabled = true
    },
    {
      ref         = "rampart_cache_auth_api"
      description = "auth-api (/api/auth/*): bypass"
      expression  = "(http.request.uri.path eq \"/api/auth\" or http.request.uri.path strict wildcard \"/api/auth/*\")"
      action      = "set_cache_settings"
      action_parameters = {
        cache = false
      }
      enabled = true
    },
    {
      ref         = "rampart_cache_cache_admin"
      description = "cache-admin (/api/cache/*): bypass"
      expression  = "(http.request.uri.path eq \"/api/cache\" or http.request.uri.path strict wildcard \"/api/cache/*\")"
      action      = "set_cache_settings"
      action_parameters = {
        cache = false
      }
      enabled = true
    },
    {
      ref         = "rampart_cache_admin_api"
      description = "admin-api (/api/admin/*): bypass"
      expression  = "(http.request.uri.path eq \"/api/admin\" or http.request.uri.path strict wildcard \"/api/admin/*\")"
      action      = "set_cache_settings"
      action_parameters = {
        cache = false
      }
      enabled = true
    },
    {
      ref         = "rampart_cache_images"
      description = "images (/images/*): edge 31536000s, browser 31536000s, stale-while-revalidate 0s"
      expression  = "(http.request.uri.path eq \"/images\" or http.request.uri.path strict wildcard \"/images/*\")"
      action      = "set_cache_settings"
      action_parameters = {
        cache = true
        edge_ttl = {
          mode    = "override_origin"
          default = 31536000
          status_code_ttl = [
            {
              status_code_range = {
                from = 500
                to   = 599
              }
              value = -1
            }
          ]
        }
        browser_ttl = {
          mode    = "override_origin"
          default = 31536000
        }
        serve_stale = {
          disable_stale_while_updating = true
        }
        respect_strong_etags = true
        cache_key            = local.rampart_cache_key
      }
      enabled = true
    },
    {
      ref         = "rampart_cache_image_transforms"
      description = "image-transforms (/cdn-cgi/image/*): edge 31536000s, browser 31536000s, stale-while-revalidate 0s"
      expression  = "(http.request.uri.path eq \"/cdn-cgi/image\" or http.request.uri.path strict wildcard \"/cdn-cgi/image/*\")"
      action      = "set_cache_settings"
      action_parameters = {
        cache = true
        edge_ttl = {
          mode    = "override_origin"
          default = 31536000
          status_code_ttl = [
            {
              status_code_range = {
                from = 500
                to   = 599
              }
              value = -1
            }
          ]
        }
        browser_ttl = {
          mode    = "override_origin"
          default = 31536000
        }
        serve_stale = {
          disable_stale_while_updating = true
        }
        respect_strong_etags = true
        cache_key            = local.rampart_cache_key
      }
      enabled = true
    },
    {
      ref         = "rampart_cache_static_assets"
      description = "static-assets (/assets/*): edge 31536000s, browser 31536000s, stale-while-revalidate 0s"
      expression  = "(http.request.uri.path eq \"/assets\" or http.request.uri.path strict wildcard \"/assets/*\")"
      action      = "set_cache_settings"
      action_parameters = {
        cache = true
        edge_ttl = {
          mode    = "override_origin"
          default = 31536000
          status_code_ttl = [
            {
              status_code_range = {
                from = 500
                to   = 599
              }
              value = -1
            }
          ]
        }
        browser_ttl = {
          mode    = "override_origin"
          default = 31536000
        }
        serve_stale = {
          disable_stale_while_updating = true
        }
        respect_strong_etags = true
        cache_key            = local.rampart_cache_key
      }
      enabled = true
    },
    {
      ref         = "rampart_cache_status_page"
      description = "status-page (/status/*): bypass"
      expression  = "(http.request.uri.path eq \"/status\" or http.request.uri.path strict wildcard \"/status/*\")"
      action      = "set_cache_settings"
      action_parameters = {
        cache = false
      }
      enabled = true
    },
    {
      ref         = "rampart_cache_metrics"
      description = "metrics (/metrics): bypass"
      expression  = "http.request.uri.path eq \"/metrics\""
      action      = "set_cache_settings"
      action_parameters = {
        cache = false
      }
      enabled = true
    },
    {
      ref         = "rampart_cache_health"
      description = "health (/health/*): bypass"
      expression  = "(http.request.uri.path eq \"/health\" or http.request.uri.path strict wildcard \"/health/*\")"
      action      = "set_cache_settings"
      action_parameters = {
        cache = false
      }
      enabled = true
    },
    {
      ref         = "rampart_cache_bypass_authenticated"
      description = "authenticated or non-GET requests are never cached"
      expression  = "(not http.request.method in {\"GET\" \"HEAD\"} or any(lower(http.request.headers.names[*])[*] eq \"authorization\") or http.cookie contains \"session=\" or http.cookie contains \"sid=\" or http.cookie contains \"connect.sid=\" or http.cookie contains \"__Host-session=\" or http.cookie contains \"__Secure-session=\")"
      action      = "set_cache_settings"
      action_parameters = {
        cache = false
      }
      enabled = true
    }
  ]
}

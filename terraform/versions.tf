# Cloudflare configuration for Rampart. The API token is read from the CLOUDFLARE_API_TOKEN
# environment variable by the provider; it never appears in these files or in state inputs.
terraform {
  required_version = ">= 1.5"

  required_providers {
    cloudflare = {
      source  = "cloudflare/cloudflare"
      version = "~> 5.0"
    }
  }
}

provider "cloudflare" {}

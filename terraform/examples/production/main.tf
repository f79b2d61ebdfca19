# A production-like site on MAAS: three Call Managers behind a VIP, two media servers and
# the database host. `terraform apply`, then
#   terraform output -json | pbx inventory from-terraform - > ../../../inventory/paris/hosts.yml
terraform {
  required_version = ">= 1.6"
  required_providers {
    maas = {
      source  = "canonical/maas"
      version = "~> 2.0"
    }
  }
}

variable "maas_api_url" {
  description = "The MAAS region controller's API, like http://maas.example.com:5240/MAAS"
  type        = string
}

variable "maas_api_key" {
  description = "A MAAS API key (consumer:token:secret) of a user allowed to allocate and deploy."
  type        = string
  sensitive   = true
}

provider "maas" {
  api_version = "2.0"
  api_url     = var.maas_api_url
  api_key     = var.maas_api_key
}

module "site" {
  source    = "../../modules/pbx_site"
  site_name = "paris"
  host_counts = {
    callmanager = 3
    media       = 2
    database    = 1
  }
  network = {
    cidr      = "10.20.0.0/24"
    interface = "eno1"
  }
  maas = {
    pool = "pbx"
    role_tags = {
      media = "pbx-media-10g"
    }
  }
  ssh_authorized_keys = [file("~/.ssh/id_ed25519.pub")]
}

output "pbx_inventory" {
  value = module.site.pbx_inventory
}

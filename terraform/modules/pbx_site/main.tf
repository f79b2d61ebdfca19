# One MAAS machine per host of the site, chosen by pool, zone and role tag, deployed with
# Debian 12, given a static address on the service network and a deploy user for Ansible.

locals {
  user_data = templatefile("${path.module}/cloud-init.yaml.tftpl", {
    ssh_user            = var.ssh_user
    ssh_authorized_keys = var.ssh_authorized_keys
  })
}

resource "maas_instance" "host" {
  for_each = local.hosts

  allocate_params {
    pool          = var.maas.pool
    zone          = var.maas.zone
    min_cpu_count = var.maas.min_cpu_count
    min_memory    = var.maas.min_memory_mb
    tags          = [lookup(var.maas.role_tags, each.value.role, "pbx-${each.value.role}")]
  }

  deploy_params {
    distro_series = var.maas.distro_series
    user_data     = local.user_data
  }

  network_interfaces {
    name        = var.network.interface
    subnet_cidr = var.network.cidr
    ip_address  = each.value.address
  }

  lifecycle {
    precondition {
      condition     = !contains([for host in values(local.hosts) : host.address], local.vip)
      error_message = "network.vip_host gives the VIP an address that a host also gets: change vip_host or address_offsets."
    }
    precondition {
      condition     = length(distinct([for host in values(local.hosts) : host.address])) == length(local.hosts)
      error_message = "network.address_offsets give two hosts the same address."
    }
  }
}

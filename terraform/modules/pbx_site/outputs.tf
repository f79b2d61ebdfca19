output "pbx_inventory" {
  description = <<-EOT
    The site for `pbx inventory from-terraform`: turns `terraform output -json` into an
    Ansible inventory (inventory/<site>/hosts.yml).
  EOT
  value = {
    format = "pbx-inventory/1"
    site   = var.site_name
    network = {
      cidr      = var.network.cidr
      vip       = local.vip
      prefix    = local.prefix_length
      interface = var.network.interface
    }
    ssh_user = var.ssh_user
    hosts = {
      for name, host in local.hosts : name => {
        role    = host.role
        address = host.address
        fqdn    = maas_instance.host[name].fqdn
      }
    }
  }
}

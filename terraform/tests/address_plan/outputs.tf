# The module's variables and address plan without its MAAS resources (the .tf files
# symlinked from modules/pbx_site), so that Terraform itself checks the validations and
# computes the plan where no provider can be installed (see terraform/README.md, "What is
# tested here"). pbx_inventory has the module's output's shape, with the FQDN MAAS gives
# a machine in its default domain "maas" in place of maas_instance.host[name].fqdn.
output "hosts" {
  value = local.hosts
}

output "vip" {
  value = local.vip
}

output "pbx_inventory" {
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
        fqdn    = "${name}.maas"
      }
    }
  }
}

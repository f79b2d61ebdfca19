# The address plan: which hosts the site has and their static addresses. No resource
# here, so terraform/tests/ can plan it (and the variables' validations) without MAAS.

locals {
  roles = ["callmanager", "database", "media", "ivr", "queue", "meeting", "im", "dataflow"]
  short = {
    callmanager = "cm"
    database    = "db"
    media       = "media"
    ivr         = "ivr"
    queue       = "queue"
    meeting     = "meeting"
    im          = "im"
    dataflow    = "dataflow"
  }
  hosts = merge([
    for role in local.roles : {
      for n in range(1, lookup(var.host_counts, role, 0) + 1) :
      "${var.site_name}-${local.short[role]}${n}" => {
        role    = role
        address = cidrhost(var.network.cidr, var.network.address_offsets[role] + n)
      }
    }
  ]...)
  prefix_length = tonumber(split("/", var.network.cidr)[1])
  vip           = cidrhost(var.network.cidr, var.network.vip_host)
}

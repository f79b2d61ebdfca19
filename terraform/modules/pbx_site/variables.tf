variable "site_name" {
  description = "Short name of the site; host names are <site_name>-<role><n> (e.g. paris-cm1)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.site_name))
    error_message = "site_name must be 1 to 20 lowercase letters, digits or '-', starting with a letter."
  }
}

variable "host_counts" {
  description = <<-EOT
    Hosts per role. callmanager: 1, or 3 and more for the VIP and the Redis Sentinel quorum;
    database: 1 (the streaming replica comes later); the others 0 or more. Roles left out get 0.
  EOT
  type        = map(number)
  default = {
    callmanager = 3
    media       = 2
    database    = 1
  }
  validation {
    condition = alltrue([for role in keys(var.host_counts) : contains(
    ["callmanager", "media", "database", "ivr", "queue", "meeting", "im", "dataflow"], role)])
    error_message = "host_counts keys must be roles: callmanager, media, database, ivr, queue, meeting, im, dataflow."
  }
  validation {
    condition     = alltrue([for count in values(var.host_counts) : count >= 0 && count <= 9 && floor(count) == count])
    error_message = "Each host count must be a whole number from 0 to 9 (the address plan gives each role 9 addresses)."
  }
  validation {
    condition     = lookup(var.host_counts, "callmanager", 0) == 1 || lookup(var.host_counts, "callmanager", 0) >= 3
    error_message = "callmanager must be 1 (no HA) or at least 3 (VIP, and a Sentinel quorum of 2)."
  }
  validation {
    condition     = lookup(var.host_counts, "database", 0) == 1
    error_message = "database must be 1: the PostgreSQL primary (replicas are not provisioned yet)."
  }
  validation {
    condition     = lookup(var.host_counts, "media", 0) >= 1
    error_message = "media must be at least 1: the Call Managers anchor every call on a media server."
  }
}

variable "network" {
  description = <<-EOT
    The service network the hosts share (IPv4). Hosts get static addresses: the n-th host of a
    role is cidrhost(cidr, address_offsets[role] + n); the VIP is cidrhost(cidr, vip_host).
    interface is the NIC MAAS configures on that network.
  EOT
  type = object({
    cidr      = string
    vip_host  = optional(number, 10)
    interface = optional(string, "eno1")
    address_offsets = optional(map(number), {
      callmanager = 10
      database    = 20
      media       = 30
      ivr         = 40
      queue       = 50
      meeting     = 60
      im          = 70
      dataflow    = 80
    })
  })
  validation {
    condition     = can(cidrhost(var.network.cidr, 0)) && !strcontains(var.network.cidr, ":")
    error_message = "network.cidr must be an IPv4 network in CIDR notation, like 10.20.0.0/24."
  }
  validation {
    condition = alltrue([for role in ["callmanager", "database", "media", "ivr", "queue", "meeting", "im", "dataflow"] :
    contains(keys(var.network.address_offsets), role)])
    error_message = "network.address_offsets must give an offset to every role: callmanager, database, media, ivr, queue, meeting, im, dataflow."
  }
  validation {
    condition     = can(cidrhost(var.network.cidr, var.network.vip_host + 1))
    error_message = "network.vip_host must be a host number inside network.cidr."
  }
  validation {
    condition = (can(cidrhost(var.network.cidr, max(values(var.network.address_offsets)...) + 9))
    && alltrue([for offset in values(var.network.address_offsets) : offset > 0]))
    error_message = "network.address_offsets must be positive and leave 9 addresses per role inside network.cidr."
  }
}

variable "maas" {
  description = <<-EOT
    Where MAAS takes the machines from and what it deploys on them. role_tags: the MAAS tag a
    machine must carry to be chosen for a role (e.g. media hosts with the right NICs);
    distro_series: the image, Debian 12 as a custom image uploaded to MAAS.
  EOT
  type = object({
    pool          = optional(string, "default")
    zone          = optional(string, "default")
    distro_series = optional(string, "custom/debian-12")
    role_tags     = optional(map(string), {})
    min_cpu_count = optional(number, 4)
    min_memory_mb = optional(number, 8192)
  })
  default = {}
  validation {
    condition     = var.maas.min_cpu_count >= 2 && var.maas.min_memory_mb >= 2048
    error_message = "maas.min_cpu_count must be at least 2 and maas.min_memory_mb at least 2048."
  }
}

variable "ssh_user" {
  description = "The user Ansible logs in as (sudo without password), created by cloud-init."
  type        = string
  default     = "deploy"
  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.ssh_user)) && var.ssh_user != "root"
    error_message = "ssh_user must be a valid Linux user name other than root."
  }
}

variable "ssh_authorized_keys" {
  description = "Public keys of the integrators who run Ansible."
  type        = list(string)
  validation {
    condition     = length(var.ssh_authorized_keys) > 0 && alltrue([for key in var.ssh_authorized_keys : can(regex("^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp(256|384|521)) ", key))])
    error_message = "ssh_authorized_keys must hold at least one OpenSSH public key."
  }
}

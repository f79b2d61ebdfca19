site_name           = "paris"
host_counts         = { callmanager = 3, media = 2, database = 1 }
network             = { cidr = "10.20.0.0/24" }
ssh_authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExample integrator"]

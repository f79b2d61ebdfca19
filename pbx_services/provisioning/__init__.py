"""Provisioning helpers: what the Ansible roles run on the hosts, and inventories from Terraform."""

"""The IVR server's logic: auto-attendant menus run per call (`menu`, sans-IO) and the
catalogue of menus, prompts and extensions they read from the cluster database (`catalog`)."""

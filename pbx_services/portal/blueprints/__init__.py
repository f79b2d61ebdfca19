"""The portal's areas, one blueprint per module; `create_app` registers every module here that
has a `blueprint` (and adds its `navigation` entries to the menu)."""

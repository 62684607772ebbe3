"""The client APIs the gateway serves, each one spec (`base.ClientApi`) listed in `registry`."""

"""Built-in connector plugins, one package each, registered by entry points like any plugin."""

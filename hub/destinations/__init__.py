"""Built-in destinations (CRM adapters), registered under the `hub.destinations` entry point group."""

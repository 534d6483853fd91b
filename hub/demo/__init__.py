"""`crmhub demo`: the whole hub on one laptop, with sample webhooks of every built-in connector."""

"""Shipped mapping specs: `mappings/<connector>/<event slug>.yaml` (data, no code)."""

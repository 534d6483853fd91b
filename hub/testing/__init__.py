"""Test helpers for connector authors: the conformance suite every connector should pass.

```python
from hub.testing import ConnectorConformance
from my_plugin import MyConnector

class TestMyConnector(ConnectorConformance):
    connector = MyConnector
    settings_values = {"api_base_url": "https://api.example.test"}   # besides `secret`
```
"""

from hub.testing.conformance import ConnectorConformance, fixture_cases

__all__ = ["ConnectorConformance", "fixture_cases"]

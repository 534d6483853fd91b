"""A third-party plugin runs the hub's conformance suite in its own tests."""

from crmhub_example_plugin import ExampleFormsConnector

from hub.testing import ConnectorConformance


class TestExampleFormsConformance(ConnectorConformance):
    connector = ExampleFormsConnector

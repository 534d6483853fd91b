"""The chaos suite: one scripted run of the real hub (embedded server, ingress, workers,
scheduler) against a faulty fake HubSpot, with SIGKILLed workers, a server restart and a
CRM outage; it proves every acknowledged webhook lands exactly once or is dead-lettered.

Run it with `python chaos/run.py` (`--short` for the ~80 s version); see `chaos/run.py`.
"""

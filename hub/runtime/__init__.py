"""The runtime: embedded server, queue, event log, workers, delivery."""

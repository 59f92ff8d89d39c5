"""Consumers: sinks of Weir's output topics (alerts, predictions)."""

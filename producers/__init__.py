"""Producers: what publishes raw events and their feedback onto Kafka."""

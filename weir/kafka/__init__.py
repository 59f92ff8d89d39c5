"""Kafka I/O on confluent-kafka: clients with the defaults that keep data, reading, admin, the local broker."""

"""What runs a stage: its protocol (batches in, records out) and the batch loop that feeds it from Kafka."""

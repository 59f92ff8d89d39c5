"""The monitor stage: data, prediction and concept drift and performance drops, raised as alerts."""

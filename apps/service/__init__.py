"""`weir serve-http`: inference as a microservice on the same registry, routing, topics and feedback loop."""

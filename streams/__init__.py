"""Stream processors: validate, features, serve, learn, monitor (faust-streaming agents)."""

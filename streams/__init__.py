"""The stream stages (validate, features, serve, learn, monitor), each in one place, and the worker that runs
them as batch loops inside a faust-streaming app."""

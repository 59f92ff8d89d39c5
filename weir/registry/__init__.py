"""The model registry: versions, routing and decisions, all kept on the compacted ``models`` topic."""

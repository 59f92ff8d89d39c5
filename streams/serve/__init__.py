"""The serve stage: every active version scores each feature vector and exactly one prediction is served."""

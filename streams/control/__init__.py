"""The controller stage: automatic retraining, shadow, canary, promotion and rollback under a policy."""

"""Training orchestration: configuration, distribution strategy, callbacks, export for TF Serving."""

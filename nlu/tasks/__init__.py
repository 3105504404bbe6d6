"""What differs per task: data, model head, batches, metrics, artifacts. The loop is shared."""

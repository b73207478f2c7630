"""The library: the batch engine (the one writer of task documents) and what runs it, free of Dagster."""

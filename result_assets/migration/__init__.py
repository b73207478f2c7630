"""The migration's steps, free of Dagster: find sources, back up, validate, write, verify."""

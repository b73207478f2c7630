"""The Dagster layer: assets, checks, IO managers, jobs and sensors wiring the migration."""

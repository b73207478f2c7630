"""Infrastructure the code location runs on: the Postgres server and the Dagster instance."""

"""Kept for the path existing homes' dagster.yaml name (dagster_storage); the code is in assets/."""

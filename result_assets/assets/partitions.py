"""One partition per legacy task; keys are task ids, escaped where Dagster needs it."""
from __future__ import annotations

from dagster import DynamicPartitionsDefinition

TASKS_PARTITION = "tasks"
task_partitions = DynamicPartitionsDefinition(name=TASKS_PARTITION)



def register_partitions(instance, keys: list[str], chunk: int = 10_000) -> int:
    """Add the keys Dagster does not know yet, in chunks; returns how many were new."""
    known = set(instance.get_dynamic_partitions(TASKS_PARTITION))
    new = [k for k in keys if k not in known]
    for start in range(0, len(new), chunk):
        instance.add_dynamic_partitions(TASKS_PARTITION, new[start:start + chunk])
    return len(new)

"""`result-assets bench`: the migration measured against the scripts and tools a team would use instead.

Contenders, each in its own subprocess on the same generated corpus:
  (a) naive.py       json.load + pandas.json_normalize + to_parquet + one INSERT per task
  (b) dlt_loader.py  dlt to Postgres and to Parquet files, tuned as its docs advise
  (c) project.py     `result-assets migrate` through Dagster, re-run, compaction, export check
  (d) project.py     the converter alone (validate_result + DeltaStore), no Dagster, no catalog
scale.py times partition registration, a dry run and `status` over 100k tasks.
"""

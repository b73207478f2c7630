"""`python -m result_assets.cli`: the same as the `result-assets` command."""
from result_assets.cli import main

main()

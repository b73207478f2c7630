"""Where dagster.yaml finds the instance storage (`module: result_assets.platform.dagster_storage`,
`class: ResultAssetsStorage`). The class lives with the other Dagster internals."""
from result_assets.assets.dagster_internals import ResultAssetsStorage  # dagster.yaml names this path

__all__ = ["ResultAssetsStorage"]

"""The Dagster layer: assets and their checks, partitions, resources, sensors and launching
runs, wiring the batch engine (migration/engine.py) into the instance."""
import warnings

from dagster import BetaWarning, PreviewWarning

# Partitioned asset checks are a preview in this Dagster release; we rely on them knowingly
# (pinned release train), and users should not see the warning on every load.
warnings.filterwarnings("ignore", category=PreviewWarning)
warnings.filterwarnings("ignore", category=BetaWarning)

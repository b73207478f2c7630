"""The code location, the only package that imports Dagster: assets and their checks, jobs,
sensors, resources, the events the UI shows, launching runs and the instance, wiring
the batch engine (migration/engine.py) into Dagster."""
import warnings

from dagster import BetaWarning, PreviewWarning

# Partitioned asset checks are a preview in this Dagster release; we rely on them knowingly
# (pinned release train), and users should not see the warning on every load.
warnings.filterwarnings("ignore", category=PreviewWarning)
warnings.filterwarnings("ignore", category=BetaWarning)

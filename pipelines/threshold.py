"""DVC stage `threshold`: see kddad.stages.model.threshold."""

from kddad.entry import run_stage
from kddad.stages.model import threshold

if __name__ == "__main__":
    run_stage(threshold)

"""DVC stage `train`: see kddad.stages.model.train."""

from kddad.entry import run_stage
from kddad.stages.model import train

if __name__ == "__main__":
    run_stage(train)

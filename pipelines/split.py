"""DVC stage `split`: see kddad.stages.data.split."""

from kddad.entry import run_stage
from kddad.stages.data import split

if __name__ == "__main__":
    run_stage(split)

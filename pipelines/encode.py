"""DVC stage `encode`: see kddad.stages.data.encode."""

from kddad.entry import run_stage
from kddad.stages.data import encode

if __name__ == "__main__":
    run_stage(encode)

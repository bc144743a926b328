"""DVC stage `download`: see kddad.stages.data.download."""

from kddad.entry import run_stage
from kddad.stages.data import download

if __name__ == "__main__":
    run_stage(download)

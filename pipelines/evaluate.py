"""DVC stage `evaluate`: see kddad.stages.evaluate.evaluate."""

from kddad.entry import run_stage
from kddad.stages.evaluate import evaluate

if __name__ == "__main__":
    run_stage(evaluate)

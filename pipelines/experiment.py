"""The whole chain for one composed config, without DVC; with -m, a Hydra multirun sweep.

python pipelines/experiment.py model=ae trainer.max_epochs=5
python pipelines/experiment.py -m model=ae,vae score=mse,likelihood seed=0,1,2
"""

import hydra
from omegaconf import DictConfig

from kddad.sweep import run_job


@hydra.main(config_path="../conf", config_name="config", version_base=None)
def main(cfg: DictConfig) -> float:
    return run_job(cfg)


if __name__ == "__main__":
    main()

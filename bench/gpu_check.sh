#!/usr/bin/env bash
# The graphed training step on a CUDA machine, in one run of a few minutes (bench/README.md).
#
# Run once from the repository root, with the wheels of what the machine lacks in .whl/ (pydantic
# and its three dependencies, typing_extensions, hydra-core, omegaconf, antlr4-python3-runtime)
# and the raw data file (kddcup.data_10_percent.gz) in .data/:
#     bash bench/gpu_check.sh
# Everything goes to the screen and to $OUT/gpu.log. Each part runs under its own timeout, within
# an overall budget (GPU_CHECK_BUDGET_S, default 420 s): a failing or slow part does not stop the
# others. The parts, most important first: versions; graph_check.py (the graph is correct);
# train_throughput.py (is it faster); pipeline_device.py (the default pipeline with and without
# the graph: F1, ROC-AUC, time); score_throughput.py.
set -u -o pipefail

OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export KDDAD_DATA_MIRROR=$PWD/.data
DEADLINE=$((SECONDS + ${GPU_CHECK_BUDGET_S:-420}))

part() {  # part NAME LIMIT_S COMMAND...: run under a timeout capped by what is left of the budget
    local name=$1 limit=$2 left=$((DEADLINE - SECONDS)) start=$SECONDS rc
    shift 2
    if ((left < 15)); then
        echo "=== $name: SKIPPED (budget spent)"
        return
    fi
    ((limit > left)) && limit=$left
    echo "=== $name (limit ${limit} s): $*"
    timeout -k 10 "$limit" "$@"
    rc=$?
    ((rc == 124 || rc == 137)) && echo "=== $name: TIMED OUT after ${limit} s"
    echo "=== $name: exit $rc after $((SECONDS - start)) s"
}

main() {
    echo "=== gpu_check $(date -u +%FT%TZ) on ${HOSTNAME:-?}, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=$PWD/src:/tmp/site || exit 1
    ls -l .data/ || echo "no .data/: the data stages will fail"
    part versions 60 bash -c '
        nvidia-smi
        python3 - <<EOF
import sys, torch, pytorch_lightning, pydantic, hydra, typing_extensions
print("python", sys.version.split()[0], "| torch", torch.__version__, "CUDA", torch.version.cuda,
      "| available", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
print("Lightning", pytorch_lightning.__version__, "| pydantic", pydantic.VERSION, "| hydra", hydra.__version__)
import kddad.config, kddad.models.training, kddad.stages.chain, kddad.stages.model, kddad.evaluation
print("kddad imports: ok; trainer.cuda_graph default:", kddad.config.TrainerConfig().cuda_graph)
EOF'
    part graph_check 120 python3 bench/graph_check.py
    part train_throughput 150 python3 bench/train_throughput.py --accelerator cuda --epochs 3 --batch-sizes 128 1024 --repeat 2
    part pipeline 150 python3 bench/pipeline_device.py --accelerator cuda --cuda-graph true false \
        --save bench/.cache/device_detector
    part score_throughput 60 python3 bench/score_throughput.py --devices cuda cpu --samples 10 1 --repeat 2
    if [ -d bench/.cache/device_detector/detector ]; then
        part score_file_cuda 90 python3 bench/score_file.py --model bench/.cache/device_detector/detector --device cuda \
            --workers 1
        # the 16 CPU cores: one process, 4 workers of 4 cores (the default), and one a core
        part score_file_cpu 240 python3 bench/score_file.py --model bench/.cache/device_detector/detector --device cpu \
            --workers 1 0 16
    fi
    echo "=== gpu_check done after ${SECONDS} s"
}

main 2>&1 | tee "$OUT/gpu.log"

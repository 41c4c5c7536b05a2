#!/usr/bin/env bash
# The GPU measurements (benchmarks/README.md, "On a GPU"): one step per call on a machine with a GPU.
#
# On a machine with the package index, once (the GPU machine may have no internet):
#   mkdir -p build && cp ../shared/data/cifar10-jpeg.tar.gz build/
#   awk '/^# the benchmarks. peers/{on=1; next} /^$/{on=0} on && !/^#/' requirements-test.txt > build/peers.txt
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl -r build/peers.txt
# Then on the GPU machine, with build/cifar10-jpeg.tar.gz and .whl/ beside the clone:
#   bash benchmarks/gpu_session.sh bench   # throughput, MFU, memory; the peers in fp32 and in bf16
#   bash benchmarks/gpu_session.sh vae     # the improved VAE's test bits/dim against training minutes
#   bash benchmarks/gpu_session.sh ddpm    # the DDPM's judge FD against training minutes
# Results land in $OUT if set, else benchmarks/results/. The machine needs torch, torchvision,
# safetensors, tqdm and matplotlib; the peers come from .whl/.
set -euo pipefail
step=${1:?"usage: gpu_session.sh bench|vae|ddpm"}
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
if [ -z "${CVAE_DATA_DIR:-}" ]; then
    mkdir -p /tmp/cifar && tar -xzf build/cifar10-jpeg.tar.gz -C /tmp/cifar
    export CVAE_DATA_DIR=/tmp/cifar/cifar10
fi
out=${OUT:-benchmarks/results}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
case "$step" in
    bench) python3 benchmarks/bench.py
           python3 benchmarks/bench.py --peer-amp --no-compile
           cp benchmarks/results/cuda*.json benchmarks/results/cuda*.md "$out"/ 2>/dev/null || true ;;
    vae)   python3 benchmarks/time_to_quality.py vae --minutes 8 --run-dir build/ttq --out "$out" ;;
    ddpm)  python3 benchmarks/time_to_quality.py ddpm --minutes 7 --run-dir build/ttq --out "$out" ;;
    *)     echo "unknown step $step: bench | vae | ddpm" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# The GPU measurements of issue #6, for a session lent the H100 (30 device-minutes, 10 per call).
#
# Here, once per session (needs the package registry, not the GPU):
#   mkdir -p build && cp ../shared/data/cifar10-jpeg.tar.gz build/
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl -r benchmarks/requirements.txt
# Then one device call per step, carrying ["build/cifar10-jpeg.tar.gz", ".whl"]:
#   bash benchmarks/gpu_session.sh bench   # ~5 min: throughput, MFU, memory; peers fp32 and bf16
#   bash benchmarks/gpu_session.sh vae     # 8 training minutes: improved VAE bits/dim vs minutes
#   bash benchmarks/gpu_session.sh ddpm    # 7 training minutes: judge FD vs minutes, 2,000 samples
# Results land in $OUT (the device tool brings them back) and in benchmarks/results/.
# The device machine has torch, torchvision, safetensors, tqdm and matplotlib but not the
# peers, and no internet: the wheels and the data travel with the call.
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

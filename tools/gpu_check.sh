#!/bin/bash
# The torch side on a GPU (--device cuda), as checked on a lent H100 on 2026-11-28
# (benchmarks/results/gpu_2026-11-28/README.md): the CUDA tests, where analyze's time goes on the
# GPU, and the label-free pipeline with a short distillation on PP-OCR's angle classifier.
# Needs the real models and sets (python tools/fetch_models.py; $ONNXPRUNE_CACHE to move them).
# Usage: [FULL=1] bash tools/gpu_check.sh [OUTDIR]
set -u
out=${1:-gpu_check_out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())" || exit 2
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py "tests/test_shim.py::test_runs_on_cuda" 2>&1 | tail -3 | tee "$out/pytest.txt"
rec=$(python3 -c "from onnxprune.testing import realdata as r; print(r.model_path('ppocr_rec'))")
python3 -c "
import numpy as np; from onnxprune.testing import realdata as r
np.savez('$out/ppocr_rec_x.npz', **r.load('ppocr_rec', 'calib', 64, seed=0).feeds())"
python3 tools/profile_analyze.py "$rec" "$out/ppocr_rec_x.npz" --samples 64 --device cuda 2>&1 \
    | grep -v '^group' | tee "$out/profile_rec64_cuda.txt"
python3 benchmarks/real_quality.py --only ppocr_cls --targets 0.5 --methods default distill \
    --distill 60 --set device=cuda --threads 8 --json "$out/ppocr_cls.json" 2>&1 \
    | grep -v '^group' | tee "$out/ppocr_cls.txt"
# FULL=1 adds the recogniser and the detector at 0.5 MACs with 120 s of distillation each (about
# 8 more minutes on an H100): the cells the 2026-11-28 run could not fit in its device time.
if [ "${FULL:-0}" = 1 ]; then
    for m in ppocr_rec ppocr_det; do
        python3 benchmarks/real_quality.py --only $m --targets 0.5 --methods default distill \
            --distill 120 --set device=cuda --threads 8 --json "$out/$m.json" 2>&1 \
            | grep -v '^group' | tee "$out/$m.txt"
    done
fi

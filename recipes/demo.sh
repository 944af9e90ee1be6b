#!/usr/bin/env bash
# `make demo`: small models trained on the shipped corpora, reloaded through the Auto classes and shown at work.
# Each training prints a progress bar; every figure printed is measured by this run.
set -euo pipefail
BIN=${BIN:-.venv/bin}
DATA_DIR=${DATA_DIR:-../shared/data}
OUTPUTS=${OUTPUTS:-outputs}
export TOKENIZERS_PARALLELISM=false HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1

# SKIP_TRAINED=1 (what `make app` sets) keeps a model folder that already holds trained weights instead of training
# it again; the reload-and-show steps still run.
trained() {  # output folder
  if [ "${SKIP_TRAINED:-0}" = 1 ] && [ -f "$1/model.safetensors" ]; then echo "== $1 is already trained: kept"; return 0; fi
  echo "== training $1"; return 1
}

train_translation() {  # arch, extra flags...
  local arch=$1; shift
  trained "$OUTPUTS/demo_translation_$arch" && return
  "$BIN/accelerate" launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
    recipes/train_translation.py --arch "$arch" --model_size small --data_dir "$DATA_DIR" \
    --output_dir "$OUTPUTS/demo_translation_$arch" --use_cpu \
    --per_device_train_batch_size 64 --per_device_eval_batch_size 128 --eval_strategy no --save_strategy no \
    --logging_steps 50 --report_to none --seed 42 --max_test_samples 300 "$@"
}

train_translation transformer --max_steps 600 --learning_rate 1e-3 --warmup_steps 200
train_translation gru --max_steps 400 --learning_rate 3e-3 --lr_scheduler_type linear
"$BIN/python" recipes/demo_translation.py "$OUTPUTS/demo_translation_transformer" "$OUTPUTS/demo_translation_gru"

# Chinese headline classification (THUCNews): a small encoder trained for one epoch, then the pipeline, loaded from
# the saved folder with its own code, classifies a few headlines.
trained "$OUTPUTS/demo_text_classification" || "$BIN/accelerate" launch --num_processes 1 --num_machines 1 \
  --mixed_precision no --dynamo_backend no recipes/train_text_classification.py --model_size small --data_dir "$DATA_DIR" \
  --output_dir "$OUTPUTS/demo_text_classification" --use_cpu --num_train_epochs 1 --max_seq_length 48 \
  --per_device_train_batch_size 64 --per_device_eval_batch_size 256 --learning_rate 1e-3 --warmup_steps 100 \
  --eval_strategy no --save_strategy no --logging_steps 100 --report_to none --seed 42
"$BIN/python" recipes/demo_text_classification.py "$OUTPUTS/demo_text_classification"

# MNIST digits: a small ViT (15 epochs: without a convolution's locality prior it starts slowly; 2 epochs give 33 %),
# a small GFNet and a small AFNO (4 epochs each) trained on the 8,000-image split, then the pipeline,
# loaded from the saved folders with their own code, classifies test digits; prints where the pictures are.
for arch_epochs in vit:15 gfnet:4 afno:4; do
  arch="${arch_epochs%%:*}"
  trained "$OUTPUTS/demo_image_classification_$arch" && continue
  "$BIN/accelerate" launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
    recipes/train_image_classification.py --arch "$arch" --model_size small --data_dir "$DATA_DIR" \
    --output_dir "$OUTPUTS/demo_image_classification_$arch" --use_cpu --num_train_epochs "${arch_epochs##*:}" \
    --per_device_train_batch_size 64 --per_device_eval_batch_size 256 --learning_rate 2e-3 --warmup_steps 50 \
    --eval_strategy no --save_strategy no --logging_steps 50 --report_to none --seed 42
done
"$BIN/python" recipes/demo_image_classification.py "$OUTPUTS/demo_image_classification_vit" \
  "$OUTPUTS/demo_image_classification_gfnet" "$OUTPUTS/demo_image_classification_afno" --data_dir "$DATA_DIR"

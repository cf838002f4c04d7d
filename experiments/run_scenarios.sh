#!/usr/bin/env bash
# Regenerate every scenario table under experiments/ (CPU budgets; see REPRODUCTION.md).
# Usage: TFMINV_DATA_DIR=../shared/data bash experiments/run_scenarios.sh [scenario ...]
# Trained classifiers, predictions and inverters are cached in $TFMINV_CACHE_DIR (runs/cache).
set -euo pipefail
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
MNIST="--dataset=mnist --width=0.25 --clf_epochs=3 --epochs=20 --max_train=10000 --max_aux=5000 --max_victims=500 --verbose=2"
FACES="--dataset=facescrub --width=0.25 --clf_epochs=15 --epochs=8 --max_aux=2500 --verbose=2"
want() { [[ " ${SELECTED} " == *" $1 "* ]]; }
SELECTED="$*"
run() { echo "+ python -m tfminv.experiments.$*"; python -m tfminv.experiments."$@"; }
if [ -z "$SELECTED" ] || want mnist; then
  run auxiliary $MNIST --out_dir=experiments/auxiliary_mnist
  run class_inference $MNIST --out_dir=experiments/class_inference_mnist
  run joint $MNIST --out_dir=experiments/joint_mnist
fi
if [ -z "$SELECTED" ] || want facescrub; then
  run auxiliary $FACES --out_dir=experiments/auxiliary_facescrub
  run alignment $FACES --out_dir=experiments/alignment_facescrub
  run class_inference $FACES --out_dir=experiments/class_inference_facescrub
  run joint $FACES --out_dir=experiments/joint_facescrub
fi
if [ -z "$SELECTED" ] || want api; then
  run api --width=0.25 --epochs=8 --clf_epochs=15 --api_epochs=20 --max_api_train=4000 \
      --max_aux=2500 --verbose=2 --out_dir=experiments/api_celeba
  # the same with a less trained API (its answers leak more; see REPRODUCTION.md)
  run api --width=0.25 --epochs=8 --clf_epochs=15 --api_epochs=6 --max_api_train=4000 \
      --max_aux=2500 --verbose=2 --out_dir=experiments/api_celeba_api6
fi
if [ -z "$SELECTED" ] || want paper; then
  # paper scale: 471 CelebA identities (about 45 min on 2 quiet CPU cores; see REPRODUCTION.md)
  PAPER="--dataset=celeba_ids --width=0.25 --epochs=10 --clf_epochs=20 --clf_init=torch --eval_width=0.25 --eval_augment=flip+shift --eval_epochs=40 --verbose=2"
  run truncation $PAPER --aux_augment=flip --k=1,5,10,50,100,471 --out_dir=experiments/truncation_celeba_ids
  for n in 2500 5000; do  # fewer generic faces, k = 10
    run truncation $PAPER --aux_augment=flip --k=10 --methods=truncation --max_aux=$n \
        --out_dir=experiments/truncation_celeba_ids_aux$n
  done
  run auxiliary $PAPER --aux_augment=flip --max_aux=10000 \
      --aux_sets=same,generic,distinct,generic_reframed --out_dir=experiments/auxiliary_celeba_ids
  run class_inference $PAPER --aux_augment=flip --n_classes_sample=50 \
      --out_dir=experiments/class_inference_celeba_ids
  run audit $PAPER '--policies=identity;topk:10;topk:1;round:2;label;gaussian:0.1;temperature:4' \
      --out_dir=experiments/audit_celeba_ids
fi
if [ -z "$SELECTED" ] || want budget; then
  # paper scale at the README main job's budget (about 8 minutes for the main job on 2 quiet
  # cores from empty caches; the rest reuses its target and judge): which public face sources
  # help, every k with and without the pool, the release-policy audit with and without it
  BUDGET="--dataset=celeba_ids --width=0.25 --epochs=5 --clf_epochs=10 --clf_init=torch --eval_width=0.25 --eval_epochs=20 --eval_augment=flip+shift"
  run truncation $BUDGET --k=10 --methods=truncation,previous --out_dir=experiments/main_job_celeba_ids
  run auxiliary $BUDGET --verbose=2 --k=10 \
      --aux_sets=generic,generic+same,generic+celeba_wild,generic+utkface,generic+fer2013,generic+same+celeba_wild+utkface,public \
      --out_dir=experiments/auxiliary_celeba_ids_sources
  run truncation $BUDGET --verbose=2 --aux=public --k=1,5,10,50,100,471 --methods=truncation,previous \
      --out_dir=experiments/truncation_celeba_ids_pool_k
  run truncation $BUDGET --verbose=2 --k=1,5,10,50,100,471 --methods=truncation,previous \
      --out_dir=experiments/truncation_celeba_ids_budget_k
  POLICIES='--policies=identity;topk:10;topk:1;round:2;label;gaussian:0.1;temperature:4'
  run audit $BUDGET --verbose=2 --aux=public "$POLICIES" --out_dir=experiments/audit_celeba_ids_pool
  run audit $BUDGET --verbose=2 "$POLICIES" --out_dir=experiments/audit_celeba_ids_budget
fi
if [ -z "$SELECTED" ] || want defences; then
  # training-time defences under one truncation attacker (k = 10); see the folders' README.md
  DEFS='--defences=none;ls:0.1;ls:-0.05;ls:-0.1;mid:0.003;mid:0.03;bido:0.05,0.5;bido:0.1,1.0;dpsgd:0.5,1.0;dpsgd:1.1,1.0;tl:1;tl:2'
  DFACES="--dataset=facescrub --width=0.25 --epochs=3 --clf_epochs=10 --max_train=1280 --verbose=2 --k=10"
  run defences $DFACES "$DEFS" --out_dir=experiments/defences_facescrub
  run truncation $DFACES --methods=truncation --out_dir=experiments/defences_facescrub/truncation
  # --max_train=9244 leaves 8,320 training images after the 10% hold-out: 65 DP-SGD batches of 128
  DPAPER="--dataset=celeba_ids --width=0.25 --clf_epochs=10 --epochs=5 --max_train=9244 --clf_init=torch --eval_width=0.25 --eval_epochs=20 --eval_augment=flip+shift --verbose=2 --k=10"
  run defences $DPAPER "$DEFS" --out_dir=experiments/defences_celeba_ids
  # the undefended row again, through the truncation scenario (same cache: same numbers)
  run truncation $DPAPER --methods=truncation --out_dir=experiments/defences_celeba_ids/truncation
fi
# experiments/truncation_* come from tfminv.experiments.truncation (commands in REPRODUCTION.md)
python -m tfminv.experiments.reproduction --experiments_dir=experiments

#!/usr/bin/env bash
# Creates the TPU VM and mounts the shared filesystem on every worker.
# Usage: scripts/tpu_create.sh   (settings in scripts/tpu_env.sh, overridable from the environment)
set -euo pipefail
source "$(dirname "$0")/tpu_env.sh"

gcloud compute tpus tpu-vm create "$TPU_NAME" \
  --project="$PROJECT" --zone="$ZONE" \
  --accelerator-type="$ACCELERATOR_TYPE" --version="$RUNTIME_VERSION" \
  $PREEMPTIBLE_FLAG

# The same NFS export on every worker: checkpoints, metrics and the lock file live there.
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --project="$PROJECT" --zone="$ZONE" --worker=all --command="
  set -e
  sudo apt-get update -q && sudo apt-get install -y -q nfs-common
  sudo mkdir -p $SHARED_DIR
  mountpoint -q $SHARED_DIR || sudo mount -t nfs -o rw,hard $NFS_EXPORT $SHARED_DIR
  sudo chmod a+rwx $SHARED_DIR
"

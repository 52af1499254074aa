#!/usr/bin/env bash
# Deletes the TPU VM. The workdir on the shared filesystem (checkpoints, metrics) is kept.
# Usage: scripts/tpu_delete.sh
set -euo pipefail
source "$(dirname "$0")/tpu_env.sh"

gcloud compute tpus tpu-vm delete "$TPU_NAME" --project="$PROJECT" --zone="$ZONE" --quiet

#!/usr/bin/env bash
# Runs `gdjax train` on every worker of the TPU VM at the same time: one JAX process per worker.
# Usage: scripts/tpu_train.sh [--config.FIELD=VALUE ...]
#
# On a TPU VM, `gdjax train` calls jax.distributed.initialize() with no
# arguments and JAX reads the topology (workers, this worker's id, the
# coordinator) by itself; no --coordinator_address/--num_processes/--process_id
# is needed. Every worker reads its rows of each global batch; process 0 alone
# writes metrics.jsonl, TensorBoard logs and sample grids; every worker writes
# its part of each Orbax checkpoint to the shared workdir.
#
# Re-running this script resumes from the workdir's latest checkpoint, e.g.
# after a preemption (SIGTERM: gdjax saves at the next step boundary and
# exits 0) or after the VM was re-created with tpu_create.sh.
set -euo pipefail
source "$(dirname "$0")/tpu_env.sh"

overrides="$*"
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --project="$PROJECT" --zone="$ZONE" --worker=all --command="
  cd ~/gdjax && .venv/bin/gdjax train --config $CONFIG --workdir $WORKDIR $overrides
"
# Then, from any worker (or any machine that mounts the workdir):
#   gcloud compute tpus tpu-vm ssh $TPU_NAME --zone=$ZONE --worker=0 --command="cd ~/gdjax && .venv/bin/gdjax eval --workdir $WORKDIR"

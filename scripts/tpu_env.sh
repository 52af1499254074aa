# Settings shared by the TPU VM scripts; `source` it, or export these before running them.
#
# The recipe, run from a checkout of gdjax on a machine with the gcloud CLI:
#   scripts/tpu_create.sh    create the TPU VM (one or more workers) and a shared filesystem mount
#   scripts/tpu_install.sh   copy gdjax to every worker and install it with jax[tpu]
#   scripts/tpu_train.sh     run `gdjax train` on every worker at once (one JAX process per worker)
#   scripts/tpu_delete.sh    delete the VM when done (the workdir on the shared filesystem stays)
# These scripts cannot run on the project's CI machine; they need a Google Cloud project with TPU quota.

export PROJECT="${PROJECT:-my-gcp-project}"
export ZONE="${ZONE:-us-central2-b}"
export TPU_NAME="${TPU_NAME:-gdjax}"
# A multi-host slice, e.g. v4-16 (2 workers), v4-32 (4), v5litepod-16 (4); v4-8 is a single host.
export ACCELERATOR_TYPE="${ACCELERATOR_TYPE:-v4-16}"
export RUNTIME_VERSION="${RUNTIME_VERSION:-tpu-ubuntu2204-base}"
# Every worker must see the same workdir: Orbax writes each process's part of a
# checkpoint there and process 0 commits it. gdjax workdirs are POSIX paths, so
# use an NFS (Filestore) export, mounted on every worker at $SHARED_DIR.
export NFS_EXPORT="${NFS_EXPORT:-10.0.0.2:/gdjax}"
export SHARED_DIR="${SHARED_DIR:-/mnt/gdjax}"
export CONFIG="${CONFIG:-configs/dcgan_fashion_mnist.py}"
export WORKDIR="${WORKDIR:-$SHARED_DIR/workdirs/dcgan_fashion_mnist}"
# "--spot" makes the VM preemptible: it gets SIGTERM, gdjax saves a checkpoint
# and exits 0, and re-running tpu_create.sh and tpu_train.sh resumes the run.
export PREEMPTIBLE_FLAG="${PREEMPTIBLE_FLAG:---spot}"

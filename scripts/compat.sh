#!/usr/bin/env bash
# Airflow compatibility lanes (docs/compat.rst). One cached venv per lane under .compat/<lane>/,
# rebuilt when the lane's committed constraints (compat/<lane>.txt) change.
#   scripts/compat.sh lock LANE...         re-resolve compat/<lane>.txt from pyproject.toml + compat/<lane>.in
#   scripts/compat.sh env LANE             build (or reuse) the lane's venv, print its python
#   scripts/compat.sh test LANE [ARGS...]  run pytest in the lane on the devstack (ARGS go to pytest)
# Lane airflow-3.3 is the project's own lock (requirements.lock) in .venv: `make test` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=$(command -v uv || echo "python3 -m uv")
extras=(--extra devstack --extra test)

lane_lock() {
    local lane=$1 resolution=()
    [ "$lane" = lowest ] && resolution=(--resolution lowest-direct)
    # Airflow 3.0's execution API rejects every task start with the fastapi/pydantic of late 2025
    # (docs/compat.rst): that lane resolves as of Airflow 3.0.6's release.
    if [ "$lane" = airflow-3.0 ]; then
        for pkg in cadwyn fastapi pydantic pydantic-core starlette; do
            resolution+=(--exclude-newer-package "$pkg=2025-09-01")
        done
    fi
    $uv pip compile pyproject.toml "${extras[@]}" --python-version 3.11 "${resolution[@]}" \
        -c "compat/$lane.in" -o "compat/$lane.txt" -q --no-annotate --no-header
}

lane_python() {
    local lane=$1
    if [ "$lane" = airflow-3.3 ]; then
        make -s .venv/.installed >&2
        echo "$PWD/.venv/bin/python"
        return
    fi
    local venv=.compat/$lane lock=compat/$lane.txt
    [ -f "$lock" ] || { echo "no such lane: $lane (no $lock)" >&2; exit 2; }
    local want
    want=$(cat "$lock" pyproject.toml | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$want" ]; then
        echo "compat: building $venv from $lock" >&2
        [ -x "$venv/bin/python" ] || $uv venv --quiet --python python3.11 "$venv" >&2
        # Bytecode at install time: these machines set PYTHONDONTWRITEBYTECODE=1.
        $uv pip sync --quiet --python "$venv/bin/python" --compile-bytecode "$lock" >&2
        $uv pip install --quiet --python "$venv/bin/python" --compile-bytecode --no-deps -e . >&2
        "$venv/bin/python" -m compileall -q airflow_provider_bacalhau >&2  # as bootstrap.sh
        echo "$want" >"$venv/.stamp"
    fi
    echo "$PWD/$venv/bin/python"
}

cmd=${1:?usage: compat.sh lock|env|test LANE}
shift
case $cmd in
lock) for lane in "$@"; do lane_lock "$lane"; done ;;
env) lane_python "${1:?lane}" ;;
test)
    lane=${1:?lane}
    shift
    py=$(lane_python "$lane")
    echo "compat: lane $lane: $("$py" -c 'import airflow; print("airflow", airflow.__version__)')" >&2
    exec "$py" -m airflow_provider_bacalhau.devstack engine -- "$py" -m pytest "$@"
    ;;
*) echo "unknown command: $cmd" >&2; exit 2 ;;
esac

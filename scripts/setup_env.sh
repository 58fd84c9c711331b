#!/usr/bin/env bash
# Creates the virtual environment (if missing) and installs speckle-lab into it.
# torch==2.13.0 (a local CPU wheel on the lab's build machines) is installed only when
# no torch is importable: a torch the user already has is never replaced or downgraded.
set -euo pipefail
venv=${1:-.venv}
python=${PYTHON:-python3}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
if ! "$py" -c "import torch" >/dev/null 2>&1; then
    echo "setup: no torch found, installing torch==2.13.0"
    "$py" -m pip install --quiet "torch==2.13.0"
else
    echo "setup: keeping torch $("$py" -c 'import torch; print(torch.__version__)')"
fi
"$py" -m pip install --quiet -e ".[test]"
echo "setup: done ($("$py" -c 'import sys; print(sys.version.split()[0])'))"

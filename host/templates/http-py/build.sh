#!/bin/sh
# Builds app.wasm with componentize-py and Spin's Python SDK, installed from PyPI into .venv.
set -eu
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -r requirements.txt
site_packages=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
.venv/bin/componentize-py -w spin-http componentize app -p . -p "$site_packages" -o app.wasm

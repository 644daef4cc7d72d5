#!/bin/sh
# Builds app.wasm with componentize-py and Spin's Python SDK, installed from PyPI into .venv,
# as the SDK's README does: in the activated venv, for Spin's `spin:up` HTTP world.
set -eu
[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q -r requirements.txt
componentize-py -w spin:up/http-trigger@4.1.0 componentize app -o app.wasm

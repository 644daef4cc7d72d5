#!/bin/sh
# Regenerates wit/deps/wasi-*-0.2.10 from the WASI 0.2.12 WIT that jco 1.35.0 ships
# (node_modules/@bytecodealliance/jco/lib/wit/builtin/0.2.12), renumbered to 0.2.10:
# the StarlingMonkey engine inside componentize-js 0.23.0 exports
# wasi:http/incoming-handler@0.2.10, and WASI 0.2.x patch releases have the same declarations.
# (package.json also lists @bytecodealliance/preview2-shim: componentize-js 0.23.0 imports it
# without declaring it as a dependency.)
set -eu
src=node_modules/@bytecodealliance/jco/lib/wit/builtin/0.2.12
for p in cli clocks filesystem http io random sockets; do
  mkdir -p "wit/deps/wasi-$p-0.2.10"
  sed 's/@0\.2\.12/@0.2.10/g' "$src/wasi-$p/package.wit" > "wit/deps/wasi-$p-0.2.10/package.wit"
done

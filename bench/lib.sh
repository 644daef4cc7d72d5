# What the benchmark scripts share: installing what they run, one wrk load and the medians of
# its runs. Sourced by bench/run.sh and bench/edge.sh, which set THREADS, CONNECTIONS and
# DURATION.

# need COMMAND[:PACKAGE]...: installs from Debian each package whose command this machine
# lacks (the package is named as the command unless given), as scripts/test does for the tests.
need() {
  local item missing=() as_root=()
  for item in "$@"; do
    command -v "${item%%:*}" >/dev/null || missing+=("${item#*:}")
  done
  ((${#missing[@]})) || return 0
  [ "$(id -u)" = 0 ] || as_root=(sudo)
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
}

# latency_ms PERCENTILE < wrk report: that percentile in milliseconds (wrk mixes us, ms and s).
latency_ms() {
  awk -v p="$1" '$1 == p {
    v = $2 + 0; u = $2; sub(/^[0-9.]+/, "", u)
    printf "%.2f ms\n", (u == "us" ? v / 1000 : u == "s" ? v * 1000 : v)
  }'
}

# load URL [DURATION]: one wrk run against URL (with WRK_SCRIPT and WRK_HEADERS, one request
# header per line); prints requests/s, p50 and p99, tab-separated.
load() {
  local url=$1 options=() header report errors
  [ -z "${WRK_SCRIPT:-}" ] || options=(-s "$WRK_SCRIPT")
  while IFS= read -r header; do
    [ -z "$header" ] || options+=(-H "$header")
  done <<<"${WRK_HEADERS:-}"
  report=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${2:-$DURATION}" --latency "${options[@]}" "$url")
  errors=$(grep -E "Non-2xx|Socket errors" <<<"$report" || true)
  [ -z "$errors" ] || echo "warning: $url: $errors" >&2
  printf '%s\t%s\t%s\n' "$(awk '/Requests\/sec/ {print $2}' <<<"$report")" \
    "$(latency_ms 50% <<<"$report")" "$(latency_ms 99% <<<"$report")"
}

# median FILE: the median of each tab-separated column of FILE, tab-separated.
median() {
  local lines middle column
  lines=$(wc -l <"$1"); middle=$(( (lines + 1) / 2 ))
  for column in $(seq 1 "$(head -1 "$1" | awk -F'\t' '{print NF}')"); do
    cut -f"$column" "$1" | sort -g | sed -n "${middle}p"
  done | paste -sd$'\t'
}

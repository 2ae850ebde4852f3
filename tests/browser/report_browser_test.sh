#!/usr/bin/env bash
# Browser test of report.html: builds a report from fixture data, loads it in headless Chromium
# with every host name unresolvable (no network), fails on any console message, script error,
# failed resource load or CSP violation, checks the charts were rendered, and writes a screenshot.
# Usage: report_browser_test.sh MAKE_REPORT DATA_DIR OUT_DIR EXPECTED_CHARTS EXPECTED_LINES
# Exit 77 (ctest SKIP) when Chromium is not installed.
set -euo pipefail
make_report="$1"; data_dir="$2"; out_dir="$3"; want_charts="$4"; want_lines="$5"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
chromium="${PAGEDKV_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "SKIP: $chromium not found; install Debian's chromium (scripts/install_deps.sh) or set" \
       "PAGEDKV_CHROMIUM to run the browser test of report.html"
  exit 77
fi

rm -rf "$out_dir"
mkdir -p "$out_dir"
"$make_report" "$data_dir" "$out_dir/report.html"

flags=(--headless --no-sandbox --disable-gpu --no-first-run --no-default-browser-check
       --disable-extensions --disable-sync --disable-background-networking
       --host-resolver-rules="MAP * ~NOTFOUND" --user-data-dir="$out_dir/profile"
       --enable-logging=stderr --v=0 --virtual-time-budget=3000)
fail() { echo "FAIL: $*"; exit 1; }

# Chromium logs page console messages (including SVG attribute parse errors) as ":CONSOLE".
check_console() {
  if grep -E ':CONSOLE|ERR_NAME_NOT_RESOLVED|Refused to' "$1"; then
    fail "console messages while loading $2 (log: $1)"
  fi
}

# 1. The report as written: no console output at all, and a screenshot for people to look at.
timeout 120 "$chromium" "${flags[@]}" --window-size=1280,4000 \
  --screenshot="$out_dir/report.png" "file://$out_dir/report.html" \
  >"$out_dir/screenshot.log" 2>&1 || { cat "$out_dir/screenshot.log"; fail "chromium exited $?"; }
check_console "$out_dir/screenshot.log" report.html
[ -s "$out_dir/report.png" ] || fail "no screenshot written to $out_dir/report.png"

# 2. A copy with an error-recording probe (the CSP gains script-src for it only): the DOM dump must
#    show every chart rendered and no recorded error.
sed -e "s|default-src 'none'; style-src 'unsafe-inline'|default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'|" \
  "$out_dir/report.html" | awk -v probe="$here/probe.html" '
    { print }
    !done && /<head>/ { while ((getline line < probe) > 0) print line; done = 1 }' \
  >"$out_dir/probe.html"
grep -q "script-src 'unsafe-inline'" "$out_dir/probe.html" || fail "could not inject the probe"
timeout 120 "$chromium" "${flags[@]}" --dump-dom "file://$out_dir/probe.html" \
  >"$out_dir/dom.html" 2>"$out_dir/dom.log" || { cat "$out_dir/dom.log"; fail "chromium exited"; }
check_console "$out_dir/dom.log" probe.html
probe="$(grep -o '<pre id="pagedkv-probe">[^<]*' "$out_dir/dom.html" | sed 's/<[^>]*>//' || true)"
[ -n "$probe" ] || fail "the probe did not run (see $out_dir/dom.html)"
echo "$probe"
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$probe"; }
[ "$(field errors)" = 0 ] || fail "errors recorded in the page: $probe"
[ "$(field charts)" = "$want_charts" ] || fail "expected $want_charts charts: $probe"
[ "$(field unrendered)" = 0 ] || fail "charts with an empty box: $probe"
[ "$(field lines)" = "$want_lines" ] || fail "expected $want_lines series lines: $probe"
[ "$(field empty_lines)" = 0 ] || fail "series lines without points: $probe"
[ "$(field bars)" -gt 0 ] || fail "no waste-breakdown bars: $probe"
[ "$(field rows)" -gt 0 ] || fail "no summary table rows: $probe"
echo "PASS: report.html loads without errors; screenshot: $out_dir/report.png"

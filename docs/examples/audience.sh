#!/usr/bin/env bash
# A runnable tour of audience analytics: starts a server on a temporary data
# directory, creates a table, imports the sample audience, defines three
# segments and prints their overlap and a lift report, then stops the
# server. Run from anywhere:
#
#   docs/examples/audience.sh
#
# It builds the release binary with cargo unless COHORTDB names one.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cohortdb=${COHORTDB:-}
if [ -z "$cohortdb" ]; then
    (cd "$here/../.." && cargo build --release --quiet)
    cohortdb="$here/../../target/release/cohortdb"
fi

data=$(mktemp -d)
log="$data/serve.log"
# Port 0: the server picks a free port and names it in its ready line.
"$cohortdb" serve --data-dir "$data/db" --listen 127.0.0.1:0 >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$data"' EXIT

addr=""
for _ in $(seq 100); do
    addr=$(sed -n 's/.*ready on \([^ ]*\).*/\1/p' "$log" | head -n 1)
    [ -n "$addr" ] && break
    kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { echo "the server did not start" >&2; cat "$log" >&2; exit 1; }

"$cohortdb" shell --addr "$addr" -c "CREATE TABLE profiles (id TEXT PRIMARY KEY, country TEXT, gender TEXT, age INT, interests SET<TEXT>, last_seen TIMESTAMP, ltv FLOAT, consent BOOL)"
"$cohortdb" import --addr "$addr" --table profiles "$here/profiles.csv"
"$cohortdb" shell --addr "$addr" -f "$here/audience.cohortql"

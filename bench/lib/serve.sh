# Shared by the admin-API benchmarks (sourced, not run): start a `sandfsd serve` on a free
# loopback port with its data under $work/data, stop it on exit, and fill its catalog.
#
#   bench_serve_start [serve flags...]   sets port, server (pid), token, token_file
#   bench_make_volumes N                 creates v1..vN and `bench` through /v1
# Needs: SANDFSD, work (a scratch directory this script removes on exit).

server=
bench_serve_cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap bench_serve_cleanup EXIT

bench_serve_start() {
  port=$((20000 + RANDOM % 20000))
  "$SANDFSD" serve --data-dir "$work/data" --listen "127.0.0.1:$port" "$@" \
    2>"$work/server.log" &
  server=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || { cat "$work/server.log" >&2; exit 1; }
  token_file=$work/data/token
  token=$(cat "$token_file")
}

bench_make_volumes() {
  seq "$1" | xargs -P 4 -I{} curl -sf -o /dev/null -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d '{"name":"v{}"}' "http://127.0.0.1:$port/v1/volumes"
  curl -sf -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"name":"bench"}' "http://127.0.0.1:$port/v1/volumes"
}

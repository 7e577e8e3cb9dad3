#!/usr/bin/env bash
# A local cluster for manual testing: a Redis of its own, N chat servers on MariaDB, nginx.
#
#   scripts/cluster.sh start [N]   build if needed, then start Redis on 6390, servers on
#                                  6000, 6002, ... (database "chat" on 127.0.0.1:3306),
#                                  nginx on 127.0.0.1:8000 (plain) and 8443 (TLS)
#   scripts/cluster.sh status      what runs, who is online
#   scripts/cluster.sh stop        stop all of it (servers first, cleanly)
#
# Then: ./bin/client 127.0.0.1 8000   (or a server directly: ./bin/client 127.0.0.1 6002)
# Logs and pid files are under run/. MYSQL_URL and REDIS_PORT override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="$PWD/run"
REDIS_PORT="${REDIS_PORT:-6390}"
MYSQL_URL="${MYSQL_URL:-mysql://root@127.0.0.1:3306}"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  local n="${1:-2}"
  [ -x bin/server ] || ./autobuild.sh
  ./scripts/setup.sh
  mkdir -p "$RUN/nginx/logs"
  mysql -h127.0.0.1 -uroot -e 'CREATE DATABASE IF NOT EXISTS chat' 2>/dev/null ||
    echo "cluster: could not create database chat (is MariaDB up?)" >&2
  if ! alive "$RUN/redis.pid"; then
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
      --daemonize yes --pidfile "$RUN/redis.pid" --logfile "$RUN/redis.log"
    sleep 0.3
  fi
  local upstreams=()
  for i in $(seq 0 $((n - 1))); do
    local port=$((6000 + 2 * i))
    upstreams+=("127.0.0.1:$port")
    if alive "$RUN/server-$port.pid"; then continue; fi
    nohup ./bin/server --listen "127.0.0.1:$port" --db "$MYSQL_URL/chat" \
      --redis "redis://127.0.0.1:$REDIS_PORT" --server-id "node-$port" \
      >"$RUN/server-$port.log" 2>&1 &
    echo $! >"$RUN/server-$port.pid"
  done
  # conf/nginx.conf lists 6000 and 6002; with another N, render the upstream block for N.
  local conf="$PWD/conf/nginx.conf" tls="$PWD/conf/nginx-tls.conf"
  if [ "$n" -ne 2 ]; then
    local servers="        zone chat_servers 64k;\n"
    for u in "${upstreams[@]}"; do servers+="        server $u weight=1 max_fails=3 fail_timeout=30s;\n"; done
    for f in nginx nginx-tls; do
      awk -v s="$servers" '
        /upstream chat_servers/ { print; printf "%s", s; skip=1; next }
        skip && /}/ { skip=0 }
        !skip' "conf/$f.conf" | sed "s#\.\./run/nginx/#$RUN/nginx/#" >"$RUN/$f.conf"
    done
    conf="$RUN/nginx.conf"
    tls="$RUN/nginx-tls.conf"
  fi
  if [ ! -f "$RUN/nginx/server.crt" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=localhost \
      -addext subjectAltName=IP:127.0.0.1 \
      -keyout "$RUN/nginx/server.key" -out "$RUN/nginx/server.crt" 2>/dev/null
  fi
  alive "$RUN/nginx/nginx.pid" || nginx -p "$RUN/nginx" -c "$conf"
  alive "$RUN/nginx/nginx-tls.pid" || nginx -p "$RUN/nginx" -c "$tls"
  sleep 0.5
  status
}

status() {
  alive "$RUN/redis.pid" && echo "redis     127.0.0.1:$REDIS_PORT  pid $(cat "$RUN/redis.pid")" || echo "redis     down"
  for pidfile in "$RUN"/server-*.pid; do
    [ -f "$pidfile" ] || continue
    local port="${pidfile##*/server-}"; port="${port%.pid}"
    alive "$pidfile" && echo "server    127.0.0.1:$port  pid $(cat "$pidfile")" ||
      echo "server    127.0.0.1:$port  down (see $RUN/server-$port.log)"
  done
  alive "$RUN/nginx/nginx.pid" && echo "nginx     127.0.0.1:8000 (plain)" || echo "nginx     down"
  alive "$RUN/nginx/nginx-tls.pid" && echo "nginx     127.0.0.1:8443 (TLS, certificate $RUN/nginx/server.crt)" || true
  if alive "$RUN/redis.pid"; then
    echo "online    $(redis-cli -p "$REDIS_PORT" --scan --pattern 'chat:user:*' | wc -l) users;" \
      "alive servers: $(redis-cli -p "$REDIS_PORT" --scan --pattern 'chat:alive:*' | sed 's/chat:alive://' | tr '\n' ' ')"
  fi
}

stop() {
  for pidfile in "$RUN"/server-*.pid; do
    [ -f "$pidfile" ] || continue
    alive "$pidfile" && kill "$(cat "$pidfile")"
  done
  for pidfile in "$RUN"/server-*.pid; do
    [ -f "$pidfile" ] || continue
    for _ in $(seq 100); do alive "$pidfile" || break; sleep 0.1; done
    rm -f "$pidfile"
  done
  for pidfile in "$RUN/nginx/nginx.pid" "$RUN/nginx/nginx-tls.pid"; do
    alive "$pidfile" && kill -QUIT "$(cat "$pidfile")"
  done
  alive "$RUN/redis.pid" && redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  echo "cluster stopped"
}

case "${1:-}" in
  start) start "${2:-2}" ;;
  stop) stop ;;
  status) status ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac

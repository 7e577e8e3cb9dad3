#!/usr/bin/env bash
# Makes this machine ready for the tests and the local cluster: nginx with the stream module
# installed, MariaDB on 127.0.0.1:3306 and Redis on 127.0.0.1:6379 answering.
# Safe to run again: it only does what is missing. Installing needs root (apt-get).
set -euo pipefail

have_nginx_stream() {
  command -v nginx >/dev/null 2>&1 && ls /usr/lib/nginx/modules/ngx_stream_module.so >/dev/null 2>&1
}

if ! have_nginx_stream; then
  echo "setup: installing nginx and its stream module" >&2
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx libnginx-mod-stream >/dev/null
  # The package starts a system nginx on port 80; the tests run their own instances.
  $SUDO systemctl disable --now nginx >/dev/null 2>&1 || $SUDO service nginx stop >/dev/null 2>&1 || true
fi

mysql_up() { mysqladmin -h127.0.0.1 -uroot ping >/dev/null 2>&1; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; }

if ! mysql_up && [ -x /usr/sbin/mariadbd ]; then
  echo "setup: starting MariaDB" >&2
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
fi
if ! redis_up && command -v redis-server >/dev/null 2>&1; then
  echo "setup: starting Redis" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
fi
for _ in $(seq 60); do
  mysql_up && redis_up && break
  sleep 1
done
mysql_up || echo "setup: MariaDB does not answer on 127.0.0.1:3306 (its tests will skip)" >&2
redis_up || echo "setup: Redis does not answer on 127.0.0.1:6379" >&2
have_nginx_stream || echo "setup: nginx with the stream module is missing (its tests will skip)" >&2
exit 0

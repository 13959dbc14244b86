#!/usr/bin/env bash
# Debian packages the suite drives for real: PostgreSQL (store, cache, coordination), nginx
# (load balancer and X-Accel-Redirect tests) and Chromium (review-console browser tests).
# Installs only what is missing; fails loudly, because CI must not skip those tests.
set -euo pipefail
need=()
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v git >/dev/null 2>&1 || need+=(git)  # provenance: the training code's commit
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# nginx starts a system instance on install; the tests run their own on loopback ports.
if command -v service >/dev/null 2>&1; then service nginx stop >/dev/null 2>&1 || true; fi

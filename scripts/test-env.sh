#!/usr/bin/env bash
# Make this machine able to run lpkg's Docker tests:
#   1. a Docker daemon (started without a bridge network when none answers);
#   2. stand-in Lambda images, built locally because no container registry is reachable;
#   3. the CDK command-line tool (npm package aws-cdk) for the CDK end-to-end test, in $state_dir/cdk-cli.
# A stand-in has the layout of public.ecr.aws/lambda/python (interpreter under /var/lang,
# awslambdaric and boto3 in /var/runtime, user sbx_user1051, the runtime's ENV).
# Work already done is skipped, so running this again is cheap.
# Usage: scripts/test-env.sh [PYTHON_MINOR...]   (default: 3.11 3.13)
set -euo pipefail

log() { printf 'test-env: %s\n' "$*" >&2; }
state_dir=${LPKG_TEST_ENV_DIR:-/var/tmp/lpkg-test-env}
mkdir -p "$state_dir"

apt_install() {
  local missing=()
  for cmd_pkg in "$@"; do
    command -v "${cmd_pkg%%:*}" >/dev/null 2>&1 || missing+=("${cmd_pkg#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

start_docker() {
  if docker info >/dev/null 2>&1; then return 0; fi
  apt_install dockerd:docker.io
  log "starting dockerd (no bridge network)"
  nohup dockerd --bridge=none --iptables=false --ip6tables=false \
    >"$state_dir/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  log "dockerd did not answer within 60 s; see $state_dir/dockerd.log"
  exit 3
}

# The Debian mirror apt already uses on this machine: debootstrap takes it from there.
debian_mirror() {
  local uri
  uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  if [ -z "$uri" ]; then
    uri=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -n1 || true)
  fi
  [ -n "$uri" ] || { log "no Debian mirror found in the apt sources"; exit 3; }
  printf '%s' "$uri"
}

suite_for() {
  case "$1" in
    3.11) echo bookworm ;;
    3.13) echo trixie ;;
    *) log "no stand-in recipe for Python $1 (3.11 and 3.13 are known)"; exit 2 ;;
  esac
}

build_runtime_image() {
  local minor=$1 arch=x86_64
  local tag="lpkg-standin/lambda-python:${minor}-${arch}"
  if docker image inspect "$tag" >/dev/null 2>&1; then
    log "$tag already built"
    return 0
  fi
  apt_install debootstrap:debootstrap
  local suite rootfs
  suite=$(suite_for "$minor")
  rootfs="$state_dir/rootfs-${minor}-${arch}"
  if [ ! -x "$rootfs/usr/bin/python${minor}" ]; then
    rm -rf "$rootfs"
    log "debootstrap $suite into $rootfs (about a minute)"
    debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates \
      "$suite" "$rootfs" "$(debian_mirror)" >"$state_dir/debootstrap-${minor}.log" 2>&1 \
      || { log "debootstrap failed; see $state_dir/debootstrap-${minor}.log"; exit 3; }
  fi
  log "laying out the Lambda runtime in $rootfs"
  mkdir -p "$rootfs/var/lang/bin" "$rootfs/var/runtime" "$rootfs/var/task" "$rootfs/opt"
  for name in "python${minor}" python3 python; do
    ln -sf "/usr/bin/python${minor}" "$rootfs/var/lang/bin/$name"
  done
  rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
  chroot "$rootfs" id sbx_user1051 >/dev/null 2>&1 || chroot "$rootfs" useradd -M -u 993 sbx_user1051
  if [ ! -d "$rootfs/var/runtime/awslambdaric" ]; then
    # The host's pip settings (index, proxy CA) carry over; nothing else of the host does.
    local pip_env=(HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin)
    for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST HTTPS_PROXY HTTP_PROXY NO_PROXY; do
      [ -n "${!var:-}" ] && pip_env+=("$var=${!var}")
    done
    # A proxy that re-signs TLS needs the host's CA bundle; it is removed again before the import.
    local host_ca=${PIP_CERT:-${REQUESTS_CA_BUNDLE:-}}
    if [ -n "$host_ca" ] && [ -f "$host_ca" ]; then
      cp -L "$host_ca" "$rootfs/tmp/host-ca.pem"
      pip_env+=(PIP_CERT=/tmp/host-ca.pem)
    fi
    cp -L /etc/resolv.conf "$rootfs/etc/resolv.conf" 2>/dev/null || true
    env -i "${pip_env[@]}" chroot "$rootfs" /usr/bin/python3 -m pip install --quiet \
      --no-cache-dir --target /var/runtime awslambdaric boto3 >&2
    rm -f "$rootfs/tmp/host-ca.pem"
  fi
  cat >"$rootfs/lambda-entrypoint.sh" <<'ENTRY'
#!/bin/sh
# Stand-in for the Lambda image's entrypoint: run the handler under the runtime interface client.
export _HANDLER="${1:-$_HANDLER}"
exec /var/lang/bin/python3 -m awslambdaric "$_HANDLER"
ENTRY
  chmod 0755 "$rootfs/lambda-entrypoint.sh"
  log "importing $tag"
  tar -C "$rootfs" -c . | docker import \
    -c "ENV LAMBDA_TASK_ROOT=/var/task" \
    -c "ENV LAMBDA_RUNTIME_DIR=/var/runtime" \
    -c "ENV LANG=en_US.UTF-8" \
    -c "ENV TZ=:/etc/localtime" \
    -c "ENV PATH=/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin" \
    -c "ENV LD_LIBRARY_PATH=/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib" \
    -c "WORKDIR /var/task" \
    -c 'ENTRYPOINT ["/lambda-entrypoint.sh"]' \
    - "$tag" >/dev/null
  log "built $tag"
}

# The CDK CLI, pinned, kept in the state folder between runs. Needs Node.js and the npm registry; without
# them the CDK test skips (and fails in CI).
CDK_CLI_VERSION=2.1148.1
install_cdk_cli() {
  local prefix="$state_dir/cdk-cli"
  if [ -x "$prefix/node_modules/.bin/cdk" ] && [ "$(cat "$prefix/version" 2>/dev/null)" = "$CDK_CLI_VERSION" ]; then
    return 0
  fi
  if ! command -v npm >/dev/null 2>&1; then
    log "no npm: the CDK end-to-end test cannot run"
    return 0
  fi
  log "installing the CDK CLI $CDK_CLI_VERSION into $prefix"
  mkdir -p "$prefix"
  if npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "aws-cdk@$CDK_CLI_VERSION" >&2; then
    echo "$CDK_CLI_VERSION" >"$prefix/version"
  else
    log "npm could not install aws-cdk"
  fi
}

install_cdk_cli
start_docker
minors=("$@")
[ ${#minors[@]} -gt 0 ] || minors=(3.11 3.13)
for minor in "${minors[@]}"; do
  build_runtime_image "$minor"
done

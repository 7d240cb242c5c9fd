#!/usr/bin/env bash
# Make this machine able to run lpkg's Docker tests:
#   1. a Docker daemon (started without a bridge network when none answers);
#   2. stand-in Lambda images, built locally because no container registry is reachable;
#   3. the CDK command-line tool (npm package aws-cdk) for the CDK end-to-end test, in $state_dir/cdk-cli.
# A stand-in has the layout of public.ecr.aws/lambda/python (interpreter under /var/lang,
# awslambdaric and boto3 in /var/runtime, user sbx_user1051, the runtime's ENV).
# An arm64 stand-in is built and run under QEMU user emulation on an x86_64 host: binfmt_misc gets
# Debian's qemu-aarch64 entry with the F flag, so containers find the interpreter without a copy of it.
# Work already done is skipped, so running this again is cheap.
# Usage: scripts/test-env.sh [MINOR[-ARCH]...]   (default: 3.11-x86_64 3.13-x86_64 3.11-arm64)
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

# Lambda's architecture name -> Debian's and the kernel's (uname -m).
debian_arch() { case "$1" in x86_64) echo amd64 ;; arm64) echo arm64 ;; *) log "unknown arch $1"; exit 2 ;; esac; }
uname_arch() { case "$1" in x86_64) echo x86_64 ;; arm64) echo aarch64 ;; esac; }

# Run aarch64 binaries on another CPU: qemu-user-static's binfmt_misc entry, with the F flag (the kernel
# opens the interpreter once, so it works inside containers and chroots that do not contain it).
register_aarch64_binfmt() {
  [ "$(uname -m)" = aarch64 ] && return 0
  apt_install qemu-aarch64-static:qemu-user-static
  local binfmt=/proc/sys/fs/binfmt_misc
  if [ ! -e "$binfmt/register" ]; then
    mount -t binfmt_misc binfmt_misc "$binfmt" \
      || { log "cannot mount binfmt_misc (needs root on the host, not in a container)"; exit 3; }
  fi
  local entry="$binfmt/qemu-aarch64"
  if [ -e "$entry" ] && grep -qx enabled "$entry" && grep -q '^flags:.*F' "$entry"; then
    return 0
  fi
  [ -e "$entry" ] && echo -1 >"$entry"  # registered without F (or disabled): register it again
  local conf=/usr/lib/binfmt.d/qemu-aarch64.conf line
  if [ -f "$conf" ] && grep -q ':[A-Z]*F[A-Z]*$' "$conf"; then
    line=$(grep -v '^#' "$conf" | head -n1)
  else
    line=':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F'
  fi
  printf '%s' "$line" >"$binfmt/register"
  log "registered qemu-aarch64 in binfmt_misc ($(grep '^flags' "$entry"))"
}

# This CPU: debootstrap, with the packages' scripts run natively in a chroot; pip runs in the chroot too.
native_rootfs() {
  local rootfs=$1 suite=$2 arch=$3 logfile=$4
  apt_install debootstrap:debootstrap
  log "debootstrap $suite ($arch) into $rootfs (about a minute)"
  debootstrap --variant=minbase --arch "$(debian_arch "$arch")" --include=python3,python3-pip,ca-certificates \
    "$suite" "$rootfs" "$(debian_mirror)" >"$logfile" 2>&1 \
    || { log "debootstrap failed; see $logfile"; exit 3; }
  chroot "$rootfs" id sbx_user1051 >/dev/null 2>&1 || chroot "$rootfs" useradd -M -u 993 sbx_user1051
  # The host's pip settings (index, proxy) carry over into the chroot; nothing else of the host does.
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
}

# Another CPU: running the packages' scripts under emulation takes half an hour, and a Python needs none of
# them. So the packages are only extracted (mmdebstrap's extract variant), the few files their scripts would
# write are written here, and the host's pip fetches the runtime client's wheels for the target CPU.
foreign_rootfs() {
  local rootfs=$1 suite=$2 arch=$3 minor=$4 logfile=$5
  apt_install mmdebstrap:mmdebstrap
  log "extracting $suite ($arch) into $rootfs"
  mmdebstrap --variant=extract --arch "$(debian_arch "$arch")" \
    --include=python3,python3-pip,ca-certificates,dash,base-passwd,base-files,libstdc++6 \
    "$suite" "$rootfs" "$(debian_mirror)" >"$logfile" 2>&1 \
    || { log "mmdebstrap failed; see $logfile"; exit 3; }
  cp "$rootfs/usr/share/base-passwd/passwd.master" "$rootfs/etc/passwd"
  cp "$rootfs/usr/share/base-passwd/group.master" "$rootfs/etc/group"
  echo 'sbx_user1051:x:993:993::/home/sbx_user1051:/usr/sbin/nologin' >>"$rootfs/etc/passwd"
  echo 'sbx_user1051:x:993:' >>"$rootfs/etc/group"
  mkdir -p "$rootfs/etc/ssl/certs"
  cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  local machine
  machine=$(uname_arch "$arch")
  python3 -m pip install --quiet \
    --no-cache-dir --disable-pip-version-check --target "$rootfs/var/runtime" \
    --platform "manylinux2014_${machine}" --only-binary=:all: --implementation cp \
    --python-version "$minor" --abi "cp${minor/./}" awslambdaric boto3 >&2
}

# What the runtime ships besides Python, by version: the durable execution SDK is in python3.13 and later
# ("for testing and development", AWS says). Pure Python, and it needs only boto3, which is there already.
runtime_extras() {
  local rootfs=$1 minor=$2
  [ "${minor#3.}" -ge 13 ] || return 0
  [ -d "$rootfs/var/runtime/aws_durable_execution_sdk_python" ] && return 0
  python3 -m pip install --quiet --no-cache-dir --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$minor" --target "$rootfs/var/runtime" aws-durable-execution-sdk-python >&2
}

# Bumped when what an image holds changes: an image of an older recipe is built again (from the kept rootfs).
STANDIN_RECIPE=3

build_runtime_image() {
  local minor=$1 arch=$2
  local tag="${LPKG_STANDIN_REPOSITORY:-lpkg-standin/lambda-python}:${minor}-${arch}"
  [ "$arch" = x86_64 ] || register_aarch64_binfmt
  if docker image inspect "$tag" >/dev/null 2>&1; then
    local recipe
    recipe=$(docker image inspect -f '{{ index .Config.Labels "io.lpkg.standin-recipe" }}' "$tag" 2>/dev/null || true)
    if [ "$recipe" = "$STANDIN_RECIPE" ]; then
      log "$tag already built"
      return 0
    fi
    log "$tag is of an older recipe: building it again"
  fi
  local suite rootfs logfile
  suite=$(suite_for "$minor")
  rootfs="$state_dir/rootfs-${minor}-${arch}"
  logfile="$state_dir/rootfs-${minor}-${arch}.log"
  # libstdc++ is in every Lambda image (C++ extensions such as grpc's need it); python3 does not pull it in.
  if [ ! -d "$rootfs/var/runtime/awslambdaric" ] || ! compgen -G "$rootfs/usr/lib/*/libstdc++.so.6" >/dev/null; then
    rm -rf "$rootfs"
    if [ "$(uname_arch "$arch")" = "$(uname -m)" ]; then
      native_rootfs "$rootfs" "$suite" "$arch" "$logfile"
    else
      foreign_rootfs "$rootfs" "$suite" "$arch" "$minor" "$logfile"
    fi
  fi
  log "laying out the Lambda runtime in $rootfs"
  mkdir -p "$rootfs/var/lang/bin" "$rootfs/var/runtime" "$rootfs/var/task" "$rootfs/opt"
  runtime_extras "$rootfs" "$minor"
  for name in "python${minor}" python3 python; do
    ln -sf "/usr/bin/python${minor}" "$rootfs/var/lang/bin/$name"
  done
  rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
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
    -c "LABEL io.lpkg.standin-recipe=$STANDIN_RECIPE" \
    -c 'ENTRYPOINT ["/lambda-entrypoint.sh"]' \
    - "$tag" >/dev/null
  # Debian's docker.io (20.10) ignores `docker import --platform`: say the image's CPU in its config,
  # or `docker run --platform linux/arm64` does not find it.
  [ "$arch" = x86_64 ] || set_image_architecture "$tag" "$(debian_arch "$arch")"
  log "built $tag"
}

set_image_architecture() {
  local tag=$1 arch=$2 work
  work=$(mktemp -d "$state_dir/retag.XXXXXX")
  docker save "$tag" | tar -C "$work" -x
  python3 - "$work" "$tag" "$arch" <<'EDIT'
import hashlib, json, pathlib, sys
work, tag, arch = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
manifest = json.loads((work / "manifest.json").read_text())
old = work / manifest[0]["Config"]
config = json.loads(old.read_text())
config["architecture"] = arch
data = json.dumps(config).encode()
new_name = hashlib.sha256(data).hexdigest() + ".json"
old.unlink()
(work / new_name).write_bytes(data)
manifest[0]["Config"] = new_name
manifest[0]["RepoTags"] = [tag]
(work / "manifest.json").write_text(json.dumps(manifest))
(work / "repositories").unlink(missing_ok=True)
EDIT
  docker rmi "$tag" >/dev/null
  tar -C "$work" -c . | docker load >/dev/null
  rm -rf "$work"
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
images=("$@")
[ ${#images[@]} -gt 0 ] || images=(3.11-x86_64 3.13-x86_64 3.11-arm64)
for image in "${images[@]}"; do
  case "$image" in
    *-*) build_runtime_image "${image%%-*}" "${image#*-}" ;;
    *) build_runtime_image "$image" x86_64 ;;
  esac
done

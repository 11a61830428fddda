#!/usr/bin/env bash
# Build the project image with podman when no registry base image can be reached, and (with
# --load) import it into the test cluster's containerd.
#
#   tests/cluster/image.sh [--load] [--defs DIR]     # prints the image reference it built
#
# --defs DIR builds one more image on top: the project image with DIR's pipelines as its
# definitions folder (SLIPWAY_DEFS), as a team ships its own pipelines (benchmarks/cluster.py).
#
# The base (Python 3.11 on Debian bookworm, the host's CA bundle) is made once with debootstrap
# and kept in the cache ($SLIPWAY_KUBE_CACHE or /var/cache/slipway-kube), as is uv (the binary of
# the PyPI uv wheel the lock file's tooling pins). podman keeps its storage under the cache too:
# nothing is written to the host's /var/lib/containers.
set -euo pipefail
# --defs DIR is the caller's: made absolute (and checked) before the cd below.
args=()
while (($#)); do
  if [[ "$1" == "--defs" ]]; then
    [[ $# -ge 2 ]] || { echo "image.sh: --defs needs a folder" >&2; exit 2; }
    [[ -d "$2" ]] || { echo "image.sh: --defs $2: no such folder" >&2; exit 2; }
    args+=(--defs "$(realpath "$2")")
    shift 2
  else
    args+=("$1")
    shift
  fi
done
set -- ${args[@]+"${args[@]}"}
cd "$(dirname "$0")/../.."
K="${SLIPWAY_KUBE_CACHE:-/var/cache/slipway-kube}"
# podman keeps a blob cache in /var/lib/containers whatever --root says: run in a private mount
# namespace where that folder is one of the cache's (made empty on the host only if missing, and
# removed again).
if [[ -z "${SLIPWAY_IMAGE_NS:-}" ]]; then
  made=""
  [[ -d /var/lib/containers ]] || { mkdir /var/lib/containers; made=1; }
  mkdir -p "$K/podman/var-lib-containers"
  set +e
  SLIPWAY_IMAGE_NS=1 unshare -m --propagation private bash -c \
    'mount --bind "$1" /var/lib/containers && shift && exec "$@"' _ "$K/podman/var-lib-containers" "$0" "$@"
  rc=$?
  set -e
  [[ -n "$made" ]] && rmdir /var/lib/containers
  exit $rc
fi
load="" defs=""
while (($#)); do
  case "$1" in
    --load) load=1 ;;
    --defs) defs="$2"; shift ;;
    *) echo "image.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
UV_VERSION=0.13.8
TAG="localhost/slipway:dev"
mkdir -p "$K/podman"
exec 8>"$K/image.lock"
flock 8
say() { printf '[kube image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# podman (cgroupfs manager) leaves empty cgroup folders behind: remove them when done.
trap 'for d in /sys/fs/cgroup/*/libpod_parent; do [[ -d $d/conmon ]] && rmdir "$d/conmon"; [[ -d $d ]] && rmdir "$d"; done 2>/dev/null || true' EXIT
podman=(podman --root "$K/podman/root" --runroot "$K/podman/run" --runtime runc
        --storage-driver overlay --cgroup-manager cgroupfs --events-backend file)

# 1. The base image: debootstrap's minimal bookworm with Python 3.11, imported once.
if ! "${podman[@]}" image exists localhost/slipway-base:bookworm; then
  say "debootstrap: Debian bookworm with python3 (a few minutes, once)"
  rm -rf "$K/base" && mkdir -p "$K/base"
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$K/base/root" http://deb.debian.org/debian >"$K/base/debootstrap.log" 2>&1 \
    || { tail -20 "$K/base/debootstrap.log" >&2; exit 1; }
  # uv verifies TLS with the system bundle inside the build: the host's (it may hold a proxy's CA).
  cp /etc/ssl/certs/ca-certificates.crt "$K/base/root/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$K/base/root/var/cache/apt/archives/"*.deb "$K/base/root/var/lib/apt/lists/"*
  tar -C "$K/base/root" -c . | "${podman[@]}" import \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - localhost/slipway-base:bookworm >&2
  rm -rf "$K/base/root"
fi

# 2. uv, from the PyPI wheel (the image ghcr.io/astral-sh/uv holds the same binaries).
if ! "${podman[@]}" image exists "localhost/uv:$UV_VERSION"; then
  say "uv $UV_VERSION from its wheel"
  rm -rf "$K/uv" && mkdir -p "$K/uv/root"
  # A Python with pip: under `uv run` (CI) python3 is the project's venv, which has none.
  for python in python3 /usr/bin/python3; do "$python" -m pip --version >/dev/null 2>&1 && break; done
  "$python" -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_17_x86_64 \
    -d "$K/uv" "uv==$UV_VERSION"
  python3 -m zipfile -e "$K"/uv/uv-*.whl "$K/uv/wheel"
  install -m 755 "$K"/uv/wheel/uv-*.data/scripts/uv "$K/uv/root/uv"
  install -m 755 "$K"/uv/wheel/uv-*.data/scripts/uvx "$K/uv/root/uvx"
  tar -C "$K/uv/root" -c . | "${podman[@]}" import - "localhost/uv:$UV_VERSION" >&2
  rm -rf "$K/uv"
fi

# 3. The project image from the repository's Dockerfile, on those two.
say "podman build $TAG"
"${podman[@]}" build --pull=never --network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
  --build-arg BASE=localhost/slipway-base:bookworm --build-arg "UV_IMAGE=localhost/uv:$UV_VERSION" \
  -t "$TAG" -f Dockerfile . >&2

# 3b. With --defs: the pipelines of DIR on top (owned by root, readable and not writable by the
# image's user whatever the folder's modes were).
if [[ -n "$defs" ]]; then
  printf '%s\n' "FROM $TAG" "USER 0" "COPY . /app/pipelines" "RUN chmod -R u=rwX,go=rX /app/pipelines" \
    "USER 10001:10001" "ENV SLIPWAY_DEFS=/app/pipelines" >"$K/defs.Containerfile"
  TAG="localhost/slipway-defs:dev"
  say "podman build $TAG (the pipelines of $defs)"
  "${podman[@]}" build --pull=never --network none -t "$TAG" -f "$K/defs.Containerfile" "$defs" >&2
fi

# 4. Into the cluster's containerd (tests/cluster/kube.py start must be running), unless this
# build is there already (its ID is kept beside containerd's state, which `kube.py reset` removes).
if [[ -n "$load" ]]; then
  id="$("${podman[@]}" image inspect --format '{{.Id}}' "$TAG")"
  stamp="$K/run/containerd/loaded-${TAG//[\/:]/_}"
  if [[ "$(cat "$stamp" 2>/dev/null)" == "$id" ]]; then
    say "$TAG ($id) is in the cluster already"
  else
    say "loading $TAG into the cluster's containerd"
    "${podman[@]}" save --format docker-archive "$TAG" -o "$K/slipway-image.tar"
    ctr --address "$K/run/containerd/containerd.sock" -n k8s.io images import "$K/slipway-image.tar" >&2
    rm -f "$K/slipway-image.tar"
    echo "$id" >"$stamp"
  fi
fi
echo "$TAG"

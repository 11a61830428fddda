#!/usr/bin/env bash
# Build a one-node Kubernetes (v1.20.2, Debian bookworm's source package) into a cache outside the
# work tree: kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy and the
# pause image's binary. Idempotent: each stage leaves a stamp, and a second run only checks them.
#
#   tests/cluster/build.sh            # cache: $SLIPWAY_KUBE_CACHE or /var/cache/slipway-kube
#
# Needs Debian's golang-go, dpkg-dev and golang-github-modern-go-reflect2-dev (tests/cluster/deps.sh
# installs them). Touches no apt source list: the source package is fetched with a private one.
# Why each step is needed: ../shared/KUBERNETES.md, as recorded in docs/kubernetes.md.
set -euo pipefail

K="${SLIPWAY_KUBE_CACHE:-/var/cache/slipway-kube}"
VERSION=v1.20.2
BIN="$K/bin"
mkdir -p "$K" "$BIN"
exec 9>"$K/build.lock"
flock 9   # two builds at once would race on the same tree

say() { printf '[kube build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# 1. The source package, through a private apt configuration (the system's lists stay untouched).
if [[ ! -f "$K/stamp.source" ]]; then
  say "fetching Debian's kubernetes source package"
  mkdir -p "$K/apt/lists/partial" "$K/apt/cache/archives/partial" "$K/src"
  cat >"$K/apt/sources.list" <<LIST
deb-src http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian-security bookworm-security main
deb-src http://deb.debian.org/debian bookworm-updates main
LIST
  apt_private=(-o "Dir::Etc::SourceList=$K/apt/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
               -o "Dir::State::Lists=$K/apt/lists" -o "Dir::Cache=$K/apt/cache"
               -o "APT::Update::Post-Invoke::=" -o "APT::Update::Post-Invoke-Success::=")
  apt-get -q "${apt_private[@]}" update >&2
  rm -rf "$K/src" && mkdir -p "$K/src"
  # Downloads the .dsc and tarballs, then dpkg-source unpacks and applies debian/patches in order.
  (cd "$K/src" && apt-get -q "${apt_private[@]}" source kubernetes >&2)
  rm -f "$K"/stamp.reflect2 "$K"/stamp.openapi "$K"/stamp.kube*  # a new tree is patched and built anew
  touch "$K/stamp.source"
fi
TREE="$(find "$K/src" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -1)"
[[ -d "$TREE" ]] || { echo "no unpacked kubernetes tree under $K/src" >&2; exit 1; }

# 2. GOPATH mode, as upstream's hack/lib/init.sh builds it (module mode refuses the vendor tree).
export GOPATH="$K/gopath" GO111MODULE=off CGO_ENABLED=0 GOFLAGS= GOCACHE="$K/gocache"
mkdir -p "$GOPATH/src/k8s.io"
ln -sfn "$TREE" "$GOPATH/src/k8s.io/kubernetes"
SRC="$GOPATH/src/k8s.io/kubernetes"

# 3. The vendored reflect2 1.0.1 breaks on Go >= 1.18: Debian's 1.0.2, without its go.mod.
if [[ ! -f "$K/stamp.reflect2" ]]; then
  say "replacing vendored reflect2 with Debian's 1.0.2"
  rm -rf "$SRC/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$SRC/vendor/github.com/modern-go/reflect2"
  rm -f "$SRC/vendor/github.com/modern-go/reflect2/go.mod" "$SRC/vendor/github.com/modern-go/reflect2/go.sum"
  touch "$K/stamp.reflect2"
fi

# 4. The generated OpenAPI definitions are not in the tarball: generate them as the Makefile does.
if [[ ! -f "$K/stamp.openapi" ]]; then
  say "generating pkg/generated/openapi"
  (cd "$SRC" && go build -o "$K/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen)
  # Every package carrying the tag, as upstream's Makefile.generated_files lists them (the staging
  # trees under their vendor/ import path); kube-openapi only mentions the tag in its docs.
  mapfile -t pkgs < <(cd "$SRC" && grep -rl --include='*.go' '+k8s:openapi-gen=' pkg staging/src \
    | grep -v -e 'code-generator' -e 'sample-apiserver' \
    | xargs -n1 dirname | sort -u \
    | sed -e 's|^staging/src/|k8s.io/kubernetes/vendor/|' -e 's|^pkg/|k8s.io/kubernetes/pkg/|')
  say "openapi-gen over ${#pkgs[@]} packages"
  (cd "$SRC" && "$K/openapi-gen" --logtostderr \
     --input-dirs "$(IFS=,; echo "${pkgs[*]}")" \
     --output-package k8s.io/kubernetes/pkg/generated/openapi \
     --output-base "$GOPATH/src" \
     -O zz_generated.openapi \
     --go-header-file hack/boilerplate/boilerplate.generatego.txt \
     --report-filename "$K/openapi-violations.txt" >&2)
  touch "$K/stamp.openapi"
fi

# 5. The binaries, with the version the server reports (helm checks a chart's kubeVersion on it):
# upstream's hack/lib/version.sh sets it in both packages (/version is client-go's copy).
ldflags="-s -w"
for pkg in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=20 -X $pkg.gitTreeState=clean"
  ldflags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
  # The stamp holds the flags it was built with: changing them rebuilds.
  if [[ ! -x "$BIN/$cmd" || "$(cat "$K/stamp.$cmd" 2>/dev/null)" != "$ldflags" ]]; then
    say "building $cmd"
    (cd "$SRC" && go build -p 2 -ldflags "$ldflags" -o "$BIN/$cmd.tmp" "./cmd/$cmd")
    mv "$BIN/$cmd.tmp" "$BIN/$cmd"
    printf '%s' "$ldflags" >"$K/stamp.$cmd"
  fi
done

# 6. The pause container's binary, static, from the same tree.
if [[ ! -x "$BIN/pause" ]]; then
  say "building pause"
  gcc -Os -static -o "$BIN/pause.tmp" "$SRC/build/pause/linux/pause.c" -DVERSION="$VERSION"
  mv "$BIN/pause.tmp" "$BIN/pause"
fi
say "built: $(ls "$BIN" | tr '\n' ' ')"

#!/usr/bin/env bash
# The Debian packages the cluster tier builds and runs with; installs only what is missing.
# No service is started (the machine's policy-rc.d refuses starts) and no apt source is added.
set -euo pipefail
packages=(golang-go golang-github-modern-go-reflect2-dev dpkg-dev etcd-server containerd runc
          containernetworking-plugins podman buildah debootstrap iptables openssl curl iproute2)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[kube deps] installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

#!/usr/bin/env bash
# The Debian packages the cluster tier builds and runs with; installs only what is missing.
# No service is started (the machine's policy-rc.d refuses starts) and no apt source is added.
set -euo pipefail
packages=(golang-go golang-github-modern-go-reflect2-dev dpkg-dev gcc libc6-dev etcd-server containerd runc
          containernetworking-plugins podman buildah debootstrap iptables openssl curl iproute2
          postgresql python3-pip util-linux)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  # etcd-server, containerd and postgresql would start system services on install: only where
  # the machine's policy-rc.d refuses service starts (exit 101) is that ruled out.
  if ! [[ -x /usr/sbin/policy-rc.d ]] || /usr/sbin/policy-rc.d containerd start >/dev/null 2>&1 || [[ $? -ne 101 ]]; then
    echo "[kube deps] missing ${missing[*]}, and installing them here could start system services" \
         "(no /usr/sbin/policy-rc.d refusing them): install them yourself, then run again" >&2
    exit 1
  fi
  echo "[kube deps] installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

"""A one-node Kubernetes 1.20 on this machine, inside a network namespace of its own.

    python tests/cluster/kube.py start     # idempotent: a running cluster is reused
    python tests/cluster/kube.py stop      # ends every process by PID, deletes the namespace
    python tests/cluster/kube.py status
    python tests/cluster/kube.py exec -- kubectl get pods -A   # a command inside the namespace

The binaries come from ``tests/cluster/build.sh`` (Debian's kubernetes source package), the rest
from Debian packages: etcd, containerd with runc and the CNI plugins, PostgreSQL's server. Every
process runs in the network namespace ``slipway-kube``, whose node address is ``10.99.0.1`` (on
its loopback device); pods get ``10.88.0.0/16`` on a CNI bridge and Services ``10.96.0.0/16``
through kube-proxy's iptables rules, which live in that namespace only. A small DNS server
(:mod:`dns`) answers ``<service>.<namespace>.svc.cluster.local`` from the API.

Nothing on the host changes: containerd and kubelet run in a private mount namespace where
``/run``, ``/var/log`` and the kernel settings kubelet rewrites at start (``vm.overcommit_memory``,
``kernel.panic`` …) are bind mounts of files under the cache; no host sysctl, iptables rule, apt
source or system service is touched. State, logs, PID files and certificates are under
``$SLIPWAY_KUBE_CACHE/run`` (default ``/var/cache/slipway-kube/run``), outside the work tree.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from hashlib import sha256
from io import BytesIO
from pathlib import Path

CACHE = Path(os.environ.get("SLIPWAY_KUBE_CACHE", "/var/cache/slipway-kube"))
RUN = CACHE / "run"
BIN = CACHE / "bin"
NS = "slipway-kube"
NETNS = Path("/run/netns") / NS
NODE_IP = "10.99.0.1"
NODE = "slipway-node"
POD_CIDR = "10.88.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
API_SERVICE_IP = "10.96.0.1"
API = "https://127.0.0.1:6443"
PAUSE = "k8s.gcr.io/pause:3.2"
#: What the node's processes are, in start order (stop goes the other way).
PROCESSES = ["etcd", "apiserver", "controller-manager", "scheduler", "node", "proxy", "dns", "postgres", "s3"]
#: Kernel settings kubelet writes at start unless they already hold its value (1.20's
#: setupKernelTunables): each is a bind mount of a file under RUN in the node's mount namespace.
KUBELET_SYSCTLS = [
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
]


class ClusterBusy(RuntimeError):
    """Another process holds the cluster (a test session or a benchmark)."""


def _holder(fd: int) -> str:
    return os.pread(fd, 300, 0).decode(errors="replace").strip() or "another process"


@contextmanager
def session(folder: Path = CACHE) -> Iterator[None]:
    """Hold the cluster for this process, from start to stop.

    A test session or benchmark begins by stopping whatever cluster is running; a second one
    started beside the first would stop the cluster under it. It raises :class:`ClusterBusy`
    instead, at once, naming the holder. The lock (``session.lock`` in the cache) is the
    kernel's: it ends with the process, however that ends.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "session.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise ClusterBusy(f"the test cluster is in use by {holder}: wait for it to end, or stop that process") from None
    os.ftruncate(fd, 0)
    command = " ".join(Path(sys.argv[0]).name if i == 0 else a for i, a in enumerate(sys.argv))[:120]
    os.pwrite(fd, f"pid {os.getpid()} ({command}) since {time.strftime('%H:%M:%S')}".encode(), 0)
    try:
        yield
    finally:
        os.close(fd)  # the lock goes with its descriptor


def in_use(folder: Path = CACHE) -> str | None:
    """Who holds the cluster (:func:`session`), or None."""
    try:
        fd = os.open(folder / "session.lock", os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(fd)
    finally:
        os.close(fd)
    return None


def say(text: str) -> None:
    print(f"[kube {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def in_ns(*command: str | os.PathLike[str]) -> list[str]:
    """``command`` run inside the cluster's network namespace."""
    return ["nsenter", f"--net={NETNS}", *map(str, command)]


def kubectl_binary() -> Path:
    """kubectl from the project's dev dependencies (tests/k8s_tools.py extracts it)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from k8s_tools import kubectl_binary as found

    return Path(found())


# ------------------------------------------------------------------------------------------------
# Certificates and kubeconfigs
# ------------------------------------------------------------------------------------------------


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _cert(pki: Path, name: str, subject: str, *, sans: str = "", server: bool = False) -> None:
    if (pki / f"{name}.crt").exists():
        return
    _openssl("genrsa", "-out", str(pki / f"{name}.key"), "2048")
    _openssl("req", "-new", "-key", str(pki / f"{name}.key"), "-subj", subject, "-out", str(pki / f"{name}.csr"))
    usage = "serverAuth,clientAuth" if server else "clientAuth"
    ext = f"basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\n"
    if sans:
        ext += f"subjectAltName={sans}\n"
    (pki / f"{name}.ext").write_text(ext)
    _openssl(
        "x509", "-req", "-in", str(pki / f"{name}.csr"), "-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"),
        "-CAcreateserial", "-days", "3650", "-extfile", str(pki / f"{name}.ext"), "-out", str(pki / f"{name}.crt"),
    )  # fmt: skip


def _kubeconfig(name: str, user: str) -> Path:
    pki = RUN / "pki"
    path = RUN / f"{name}.kubeconfig"
    data = lambda p: base64.b64encode(p.read_bytes()).decode()  # noqa: E731
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": NS, "cluster": {"server": API, "certificate-authority-data": data(pki / "ca.crt")}}],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": data(pki / f"{name}.crt"),
                    "client-key-data": data(pki / f"{name}.key"),
                },
            }
        ],
        "contexts": [{"name": NS, "context": {"cluster": NS, "user": user}}],
        "current-context": NS,
    }
    path.touch(mode=0o600)
    path.chmod(0o600)  # the admin's key is in it
    path.write_text(json.dumps(config, indent=1))
    return path


def make_pki() -> None:
    pki = RUN / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    if not (pki / "ca.crt").exists():
        _openssl("genrsa", "-out", str(pki / "ca.key"), "2048")
        _openssl(
            "req", "-x509", "-new", "-key", str(pki / "ca.key"), "-subj", "/CN=slipway-kube-ca",
            "-days", "3650", "-out", str(pki / "ca.crt"),
        )  # fmt: skip
    sans = (
        f"IP:127.0.0.1,IP:{NODE_IP},IP:{API_SERVICE_IP},DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    )
    _cert(pki, "apiserver", "/CN=kube-apiserver", sans=sans, server=True)
    _cert(pki, "admin", "/O=system:masters/CN=slipway-admin")
    _cert(pki, "apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client")
    _cert(pki, "controller-manager", "/CN=system:kube-controller-manager")
    _cert(pki, "scheduler", "/CN=system:kube-scheduler")
    _cert(pki, "kubelet", f"/O=system:nodes/CN=system:node:{NODE}")
    _cert(pki, "kubelet-serving", f"/CN={NODE}", sans=f"IP:{NODE_IP},DNS:{NODE}", server=True)
    _cert(pki, "proxy", "/CN=system:kube-proxy")
    if not (pki / "sa.key").exists():
        _openssl("genrsa", "-out", str(pki / "sa.key"), "2048")
        _openssl("rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))
    for name, user in [
        ("admin", "slipway-admin"),
        ("controller-manager", "system:kube-controller-manager"),
        ("scheduler", "system:kube-scheduler"),
        ("kubelet", f"system:node:{NODE}"),
        ("proxy", "system:kube-proxy"),
    ]:
        _kubeconfig(name, user)


# ------------------------------------------------------------------------------------------------
# Processes
# ------------------------------------------------------------------------------------------------


def _start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/<pid>/stat): with the PID, names one process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _pid(name: str) -> int | None:
    """The PID of this cluster's ``name`` while that very process runs (not a later one with its PID)."""
    path = RUN / "pids" / f"{name}.pid"
    with suppress(FileNotFoundError, ValueError):
        pid_text, _, started = path.read_text().strip().partition(" ")
        pid = int(pid_text)
        if not started:  # written by node.sh (`echo $!`): stamped by _stamp_node_pids at start
            return None
        if _start_time(pid) == started and _alive(pid):
            return pid
    return None


def _keep_pid(name: str, pid: int) -> None:
    (RUN / "pids").mkdir(parents=True, exist_ok=True)
    (RUN / "pids" / f"{name}.pid").write_text(f"{pid} {_start_time(pid)}")


def _spawn(name: str, command: list[str], *, env: dict[str, str] | None = None) -> int:
    """Start ``command`` in its own session, its output in logs/<name>.log, its PID kept."""
    (RUN / "logs").mkdir(parents=True, exist_ok=True)
    (RUN / "pids").mkdir(parents=True, exist_ok=True)
    with (RUN / "logs" / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
    _keep_pid(name, process.pid)
    return process.pid


def _wait(what: str, ready, *, seconds: float, name: str) -> None:  # noqa: ANN001
    """Wait until ``ready()`` is true; fail with the tail of the process's log otherwise."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with suppress(Exception):
            if ready():
                return
        if _pid(name) is None:
            break
        time.sleep(0.5)
    log = RUN / "logs" / f"{name}.log"
    tail = log.read_text(errors="replace").splitlines()[-25:] if log.exists() else []
    raise SystemExit(
        f"{what} did not become ready ({'exited' if _pid(name) is None else 'timed out'}):\n" + "\n".join(tail)
    )


def _api_ok(path: str) -> bool:
    command = in_ns(sys.executable, "-c", _PROBE, API + path)
    return subprocess.run(command, capture_output=True, timeout=10).returncode == 0


# A probe run inside the namespace (the host cannot reach the API's 127.0.0.1): exit 0 on HTTP 200.
_PROBE = f"""
import ssl, sys, urllib.request
c = ssl.create_default_context(cafile={str(RUN / "pki" / "ca.crt")!r})
c.load_cert_chain({str(RUN / "pki" / "admin.crt")!r}, {str(RUN / "pki" / "admin.key")!r})
sys.exit(0 if urllib.request.urlopen(sys.argv[1], context=c, timeout=5).status == 200 else 1)
"""


def kubectl(*args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess[str]:
    """kubectl as the cluster's admin, inside the namespace."""
    command = in_ns(kubectl_binary(), f"--kubeconfig={RUN / 'admin.kubeconfig'}", *args)
    return subprocess.run(command, check=check, capture_output=capture, text=True)


def run_in_cluster(
    namespace: str, *command: str | os.PathLike[str], env: dict[str, str] | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """``command`` on the host, where a pod of ``namespace`` stands: the cluster's network and DNS.

    A private mount namespace puts the cluster's resolver in /etc/resolv.conf for this command
    only, so Service names resolve as they do in a pod.
    """
    resolv = RUN / f"resolv-{namespace}.conf"
    resolv.write_text(
        f"nameserver {NODE_IP}\nsearch {namespace}.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
    )
    script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
    wrapped = in_ns("unshare", "-m", "--propagation", "private", "sh", "-c", script, resolv, *command)
    env = {**os.environ, "KUBECONFIG": str(RUN / "admin.kubeconfig"), **(env or {})}
    return subprocess.run(wrapped, capture_output=True, text=True, env=env, timeout=timeout)


def apply(manifest: dict) -> None:
    """``kubectl apply`` of ``manifest``, given on stdin (secrets never on a command line)."""
    done = subprocess.run(
        in_ns(kubectl_binary(), f"--kubeconfig={RUN / 'admin.kubeconfig'}", "apply", "-f", "-"),
        input=json.dumps(manifest), capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"kubectl apply: {done.stderr.strip()}")


def helm(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    """helm (from the project's dev dependencies) as the cluster's admin, inside the namespace."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from k8s_tools import helm_binary

    command = in_ns(helm_binary(), f"--kubeconfig={RUN / 'admin.kubeconfig'}", *args)
    return subprocess.run(command, capture_output=True, text=True)


def _netns() -> None:
    if not Path("/run/netns").exists():  # `ip netns add` makes it (a mount): stop() undoes it
        RUN.mkdir(parents=True, exist_ok=True)
        (RUN / "made-run-netns").touch()
    if not NETNS.exists():
        subprocess.run(["ip", "netns", "add", NS], check=True)
    subprocess.run(["ip", "-n", NS, "link", "set", "lo", "up"], check=True)
    addresses = subprocess.run(["ip", "-n", NS, "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True)
    if NODE_IP not in addresses.stdout:
        subprocess.run(["ip", "-n", NS, "addr", "add", f"{NODE_IP}/32", "dev", "lo"], check=True)
    # A route to the Service range, so the node's own processes reach ClusterIPs (kube-proxy's
    # OUTPUT rules rewrite the destination; without a route the connect fails before them).
    routes = subprocess.run(["ip", "-n", NS, "route"], capture_output=True, text=True).stdout
    if SERVICE_CIDR not in routes:
        subprocess.run(["ip", "-n", NS, "route", "add", SERVICE_CIDR, "dev", "lo", "src", NODE_IP], check=True)


def _etcd() -> None:
    if _pid("etcd"):
        return
    command = in_ns(
        "etcd", "--name", NODE, "--data-dir", RUN / "etcd",
        "--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
        "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
        "--initial-cluster", f"{NODE}=http://127.0.0.1:2380", "--listen-metrics-urls", "http://127.0.0.1:2381",
        "--quota-backend-bytes", str(2 * 1024**3), "--log-level", "warn",
    )  # fmt: skip
    _spawn("etcd", command, env={"ETCD_UNSUPPORTED_ARCH": ""})
    probe = in_ns("curl", "-sf", "http://127.0.0.1:2379/health")
    _wait("etcd", lambda: subprocess.run(probe, capture_output=True).returncode == 0, seconds=30, name="etcd")


AUDIT_LOG = RUN / "logs" / "audit.log"


def _audit_policy() -> Path:
    policy = RUN / "audit-policy.json"
    policy.write_text(
        json.dumps(
            {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "omitStages": ["RequestReceived"],
                "rules": [
                    {"level": "None", "userGroups": ["system:serviceaccounts:kube-system"]},  # controllers
                    {"level": "Metadata", "userGroups": ["system:serviceaccounts"]},
                    {"level": "None"},
                ],
            }
        )
    )
    return policy


def audited(user: str) -> list[dict]:
    """The audit log's entries for ``user`` (e.g. ``system:serviceaccount:ns:name``), oldest first."""
    if not AUDIT_LOG.exists():
        return []
    entries = [json.loads(line) for line in AUDIT_LOG.read_text().splitlines() if line.strip()]
    return [e for e in entries if e.get("user", {}).get("username") == user]


def _apiserver() -> None:
    if _pid("apiserver"):
        return
    pki = RUN / "pki"
    command = in_ns(
        BIN / "kube-apiserver",
        "--etcd-servers=http://127.0.0.1:2379",
        "--bind-address=0.0.0.0",
        f"--advertise-address={NODE_IP}",
        "--secure-port=6443",
        "--insecure-port=0",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        "--kubelet-preferred-address-types=InternalIP",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction,ServiceAccount,LimitRanger,ResourceQuota",
        "--allow-privileged=true",
        "--profiling=false",
        # Every request of a service account, one JSON line each: what the chart's Role is used for.
        f"--audit-policy-file={_audit_policy()}",
        f"--audit-log-path={AUDIT_LOG}",
        "--audit-log-maxsize=100",
        "--v=1",
    )
    _spawn("apiserver", command)
    _wait("kube-apiserver", lambda: _api_ok("/readyz"), seconds=90, name="apiserver")


def _controllers() -> None:
    pki = RUN / "pki"
    if not _pid("controller-manager"):
        _spawn(
            "controller-manager",
            in_ns(
                BIN / "kube-controller-manager",
                f"--kubeconfig={RUN / 'controller-manager.kubeconfig'}",
                f"--authentication-kubeconfig={RUN / 'controller-manager.kubeconfig'}",
                f"--authorization-kubeconfig={RUN / 'controller-manager.kubeconfig'}",
                "--bind-address=127.0.0.1",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service,-route",
                "--leader-elect=false",
                "--profiling=false",
                "--v=1",
            ),
        )
    if not _pid("scheduler"):
        _spawn(
            "scheduler",
            in_ns(
                BIN / "kube-scheduler",
                f"--kubeconfig={RUN / 'scheduler.kubeconfig'}",
                f"--authentication-kubeconfig={RUN / 'scheduler.kubeconfig'}",
                f"--authorization-kubeconfig={RUN / 'scheduler.kubeconfig'}",
                "--bind-address=127.0.0.1",
                "--leader-elect=false",
                "--profiling=false",
                "--v=1",
            ),
        )


def _node_files() -> Path:
    """containerd's and kubelet's configuration, the CNI network and the script that starts both."""
    for folder in ["containerd", "cni/net.d", "cni/data", "kubelet", "host-run", "host-log", "sysctl"]:
        (RUN / folder).mkdir(parents=True, exist_ok=True)
    sock = RUN / "containerd" / "containerd.sock"
    sock.unlink(missing_ok=True)  # a containerd killed earlier leaves it: it must not count as started
    for raw in (RUN / "pids").glob("*.raw"):
        raw.unlink()
    (RUN / "containerd" / "config.toml").write_text(
        f"""version = 2
root = "{RUN / "containerd" / "root"}"
state = "{RUN / "containerd" / "state"}"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{sock}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{RUN / "cni" / "net.d"}"
"""
    )
    (RUN / "cni" / "net.d" / "10-slipway.conflist").write_text(
        json.dumps(
            {
                "cniVersion": "0.4.0",
                "name": "slipway",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": "cni0",
                        "isGateway": True,
                        "ipMasq": False,
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": POD_CIDR}]],
                            "routes": [{"dst": "0.0.0.0/0"}],
                            "dataDir": str(RUN / "cni" / "data"),
                        },
                    },
                    {"type": "portmap", "capabilities": {"portMappings": True}},
                ],
            },
            indent=1,
        )
    )
    (RUN / "resolv.conf").write_text(f"nameserver {NODE_IP}\n")
    pki = RUN / "pki"
    (RUN / "kubelet" / "config.yaml").write_text(
        json.dumps(
            {
                "kind": "KubeletConfiguration",
                "apiVersion": "kubelet.config.k8s.io/v1beta1",
                "address": NODE_IP,
                "readOnlyPort": 0,
                "authentication": {
                    "anonymous": {"enabled": False},
                    "webhook": {"enabled": True},
                    "x509": {"clientCAFile": str(pki / "ca.crt")},
                },
                "authorization": {"mode": "Webhook"},
                "tlsCertFile": str(pki / "kubelet-serving.crt"),
                "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
                "cgroupDriver": "cgroupfs",
                "cgroupsPerQOS": False,
                "enforceNodeAllocatable": [],
                "failSwapOn": False,
                "makeIPTablesUtilChains": False,
                "clusterDNS": [NODE_IP],
                "clusterDomain": "cluster.local",
                "resolvConf": str(RUN / "resolv.conf"),
                "imageGCHighThresholdPercent": 100,
                "imageGCLowThresholdPercent": 99,
                "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
                "serializeImagePulls": False,
                "registerNode": True,
                "maxPods": 60,
            },
            indent=1,
        )
    )
    mounts = []
    for setting in KUBELET_SYSCTLS:
        copy = RUN / "sysctl" / setting.replace("/", ".")
        copy.write_text(Path("/proc/sys", setting).read_text())
        mounts.append(f"mount --bind {copy} /proc/sys/{setting}")
    script = RUN / "node.sh"
    script.write_text(
        f"""#!/bin/bash
# Runs in the cluster's network namespace and a private mount namespace (tests/cluster/kube.py).
set -euo pipefail
mount --make-rprivate /
{chr(10).join(mounts)}
mount --bind {RUN / "host-run"} /run
mount --bind {RUN / "host-log"} /var/log
containerd --config {RUN / "containerd" / "config.toml"} >>{RUN / "logs" / "containerd.log"} 2>&1 &
echo $! >{RUN / "pids" / "containerd.raw"}
for _ in $(seq 60); do [[ -S {sock} ]] && break; sleep 0.5; done
{BIN / "kubelet"} --config={RUN / "kubelet" / "config.yaml"} --kubeconfig={RUN / "kubelet.kubeconfig"} \\
  --container-runtime=remote --container-runtime-endpoint=unix://{sock} --root-dir={RUN / "kubelet" / "root"} \\
  --node-ip={NODE_IP} --hostname-override={NODE} --v=1 >>{RUN / "logs" / "kubelet.log"} 2>&1 &
echo $! >{RUN / "pids" / "kubelet.raw"}
wait
"""
    )
    return sock


def _pause_image() -> bytes:
    """A docker-archive of the pause image, built from the static binary build.sh compiled."""
    layer = BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tar.gettarinfo(str(BIN / "pause"), arcname="pause")
        info.uid = info.gid = 0
        with (BIN / "pause").open("rb") as f:
            tar.addfile(info, f)
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + sha256(layer_bytes).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    config_name = sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [PAUSE], "Layers": ["layer.tar"]}]).encode()
    archive = BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, data in [("layer.tar", layer_bytes), (config_name, config), ("manifest.json", manifest)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, BytesIO(data))
    return archive.getvalue()


def ctr(*args: str, **kwargs) -> subprocess.CompletedProcess:  # noqa: ANN003
    return subprocess.run(
        ["ctr", "--address", str(RUN / "containerd" / "containerd.sock"), "-n", "k8s.io", *args], **kwargs
    )


def _node() -> None:
    if _pid("node"):
        return
    sock = _node_files()
    _spawn("node", in_ns("unshare", "-m", "--propagation", "private", "bash", RUN / "node.sh"))
    _wait("containerd", sock.exists, seconds=60, name="node")
    _wait("kubelet", lambda: (RUN / "pids" / "kubelet.raw").exists(), seconds=60, name="node")
    for name in ("containerd", "kubelet"):
        _keep_pid(name, int((RUN / "pids" / f"{name}.raw").read_text()))
    ctr("images", "import", "-", input=_pause_image(), check=True, capture_output=True)


def _proxy() -> None:
    if _pid("proxy"):
        return
    config = RUN / "proxy.yaml"
    config.write_text(
        json.dumps(
            {
                "kind": "KubeProxyConfiguration",
                "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                "clientConnection": {"kubeconfig": str(RUN / "proxy.kubeconfig")},
                "mode": "iptables",
                "clusterCIDR": POD_CIDR,
                "bindAddress": "127.0.0.1",
                "healthzBindAddress": "127.0.0.1:10256",
                "metricsBindAddress": "127.0.0.1:10249",
                # Pod-to-Service replies on the same bridge return through the namespace.
                "iptables": {"masqueradeAll": True},
                # 0: leave the kernel's conntrack settings alone (they are not per namespace).
                "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
            }
        )
    )
    _spawn("proxy", in_ns(BIN / "kube-proxy", f"--config={config}", f"--hostname-override={NODE}", "--v=1"))


def _dns() -> None:
    if _pid("dns"):
        return
    here = Path(__file__).resolve().parent
    _spawn("dns", in_ns(sys.executable, here / "dns.py", "--listen", NODE_IP, "--server", API, "--pki", RUN / "pki"))


#: The cluster's own PostgreSQL (Dagster's instance and MLflow's backend store) and S3 server
#: (moto), on the node address: what a team would run beside the cluster, reached from pods through
#: Services without selectors (:func:`external_services`).
PG_PORT = 5432
S3_PORT = 9000
PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), default=Path("/usr/lib/postgresql/15/bin"))


def _postgres() -> None:
    if _pid("postgres"):
        return
    data, sockets = RUN / "pg" / "data", RUN / "pg" / "sockets"
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        sockets.mkdir(parents=True, exist_ok=True)
        shutil.chown(RUN / "pg", "postgres", "postgres")
        for folder in (data, sockets):
            shutil.chown(folder, "postgres", "postgres")
        subprocess.run(
            ["runuser", "-u", "postgres", "--", PG_BIN / "initdb", "-D", data, "--auth-local=peer",
             "--auth-host=scram-sha-256", "-U", "postgres"],
            check=True, capture_output=True,
        )  # fmt: skip
        # Pods connect with passwords (their Secrets); the node's own tools through the socket.
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 10.0.0.0/8 scram-sha-256\n")
    _spawn(
        "postgres",
        in_ns(
            "runuser", "-u", "postgres", "--", PG_BIN / "postgres", "-D", data, "-p", str(PG_PORT),
            "-c", f"listen_addresses={NODE_IP}", "-c", f"unix_socket_directories={sockets}",
            "-c", "unix_socket_permissions=0700", "-c", "max_connections=200", "-c", "fsync=off",
        ),
    )  # fmt: skip
    _wait("postgres", lambda: psql("select 1").returncode == 0, seconds=60, name="postgres")


def psql(sql: str, database: str = "postgres") -> subprocess.CompletedProcess[str]:
    """``sql`` (read from stdin: no password on a command line) as the cluster's PostgreSQL superuser."""
    command = ["runuser", "-u", "postgres", "--", "psql", "-h", str(RUN / "pg" / "sockets"), "-p", str(PG_PORT)]
    return subprocess.run(
        [*command, "-d", database, "-qtA", "-v", "ON_ERROR_STOP=1"], input=sql, capture_output=True, text=True
    )


def database(name: str, user: str, password: str) -> None:
    """A database owned by ``user`` (made with ``password``), if not there yet."""
    if psql(f"select 1 from pg_roles where rolname = '{user}'").stdout.strip() != "1":
        psql(f"create role {user} login password '{password}'")
    else:
        psql(f"alter role {user} password '{password}'")
    if psql(f"select 1 from pg_database where datname = '{name}'").stdout.strip() != "1":
        psql(f"create database {name} owner {user}")


def _s3() -> None:
    if _pid("s3"):
        return
    _spawn("s3", in_ns(sys.executable, "-m", "moto.server", "-H", NODE_IP, "-p", str(S3_PORT)))
    probe = in_ns("curl", "-sf", f"http://{NODE_IP}:{S3_PORT}/moto-api/data.json")
    _wait("the S3 server", lambda: subprocess.run(probe, capture_output=True).returncode == 0, seconds=60, name="s3")


def s3_bucket(name: str) -> None:
    """A bucket on the cluster's S3 server (moto keeps it in memory until the server stops)."""
    subprocess.run(
        in_ns("curl", "-sf", "-X", "PUT", f"http://{NODE_IP}:{S3_PORT}/{name}"), check=True, capture_output=True
    )


def external_services(namespace: str) -> None:
    """Services named ``slipway-postgresql`` and ``slipway-s3`` in ``namespace``, to the node's servers."""
    for name, port in [("slipway-postgresql", PG_PORT), ("slipway-s3", S3_PORT)]:
        manifest = {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": {"ports": [{"port": port, "targetPort": port, "protocol": "TCP"}]},
                },
                {
                    "apiVersion": "v1",
                    "kind": "Endpoints",
                    "metadata": {"name": name, "namespace": namespace},
                    "subsets": [{"addresses": [{"ip": NODE_IP}], "ports": [{"port": port, "protocol": "TCP"}]}],
                },
            ],
        }
        apply(manifest)


def _node_ready() -> bool:
    out = kubectl("get", "node", NODE, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False)
    return out.stdout.strip() == "True"


def start() -> None:
    for binary in ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "pause"]:
        if not (BIN / binary).exists():
            raise SystemExit(f"{BIN / binary} is missing: run tests/cluster/build.sh first")
    started = time.monotonic()
    RUN.mkdir(parents=True, exist_ok=True)
    make_pki()
    _netns()
    _etcd()
    _apiserver()
    _controllers()
    _node()
    _proxy()
    _dns()
    _postgres()
    _s3()
    _wait("the node", _node_ready, seconds=120, name="node")
    say(f"cluster ready in {time.monotonic() - started:.1f} s (API {API} inside netns {NS}, node {NODE_IP})")


# ------------------------------------------------------------------------------------------------
# Stopping
# ------------------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _tree(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += _children(p)
    return seen


def _shims() -> list[int]:
    """containerd's shims for this cluster (they outlive containerd by design) and what they run."""
    address = str(RUN / "containerd" / "containerd.sock")
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        with suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if cmdline and cmdline[0].endswith(b"containerd-shim-runc-v2") and address.encode() in cmdline:
                found += _tree(int(proc.name))
    return found


def _end(pids: list[int], seconds: float = 10) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.split(")")[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def stop() -> None:
    """End every process of the cluster by PID, then delete the namespace and what runc left.

    kubelet first (it would restart the containers killed next), then the containers and their
    shims until none is left (they outlive containerd by design), then containerd and the rest.
    """
    for name in ("kubelet",):
        _stop(name)
    for _ in range(10):
        containers = _shims()
        if not containers:
            break
        _end(containers[::-1], seconds=5)  # the containers first, then their shims
    _stop_postgres()
    for name in ["s3", "dns", "proxy", "containerd", "node", "scheduler", "controller-manager", "apiserver", "etcd"]:
        _stop(name)
    if NETNS.exists():
        subprocess.run(["ip", "netns", "delete", NS], check=True)
    _forget_run_netns()
    remove_empty_cgroups("k8s.io")
    say("cluster stopped")


def _stop(name: str) -> None:
    pid = _pid(name)
    if pid:
        _end(_tree(pid)[::-1])
    for suffix in ("pid", "raw"):
        (RUN / "pids" / f"{name}.{suffix}").unlink(missing_ok=True)


def _stop_postgres() -> None:
    """A fast shutdown of the postmaster (killing its children first would only have them restarted)."""
    if _pid("postgres"):
        subprocess.run(
            ["runuser", "-u", "postgres", "--", PG_BIN / "pg_ctl", "-D", RUN / "pg" / "data", "stop", "-m", "fast", "-w"],
            capture_output=True, timeout=60,
        )  # fmt: skip
    _stop("postgres")


def _forget_run_netns() -> None:
    """Undo the /run/netns mount `ip netns add` made, when this cluster made it and nothing else uses it."""
    marker = RUN / "made-run-netns"
    if marker.exists() and Path("/run/netns").exists() and not any(Path("/run/netns").iterdir()):
        subprocess.run(["umount", "/run/netns"], capture_output=True)
        subprocess.run(["umount", "/run/netns"], capture_output=True)  # ip mounts it twice (bind, then shared)
        with suppress(OSError):
            Path("/run/netns").rmdir()
        marker.unlink()


def remove_empty_cgroups(name: str) -> None:
    """Remove the (now empty) cgroup folders runc made for the cluster's containers, deepest first."""
    for controller in Path("/sys/fs/cgroup").iterdir():
        top = controller / name
        if not top.is_dir():
            continue
        for folder in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with suppress(OSError):
                folder.rmdir()
        with suppress(OSError):
            top.rmdir()


def reset() -> None:
    """Stop, then forget the cluster's state (etcd, containerd's images, certificates)."""
    stop()
    if RUN.exists():
        subprocess.run(["umount", "-R", str(RUN)], capture_output=True)
        shutil.rmtree(RUN)


def _lines(command: list[str]) -> list[str]:
    return subprocess.run(command, capture_output=True, text=True).stdout.splitlines()


def host_state() -> dict[str, object]:
    """What the cluster must leave as it found it on the host: kernel settings, firewall, links, mounts."""
    settings = [
        *KUBELET_SYSCTLS,
        "net/ipv4/ip_forward",
        "net/ipv4/conf/all/route_localnet",
        "net/netfilter/nf_conntrack_max",
    ]
    values = {}
    for setting in settings:
        with suppress(OSError):
            values[setting] = Path("/proc/sys", setting).read_text().strip()
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return {
        "sysctl": values,
        "iptables": [line for line in rules.splitlines() if not line.startswith("#")],
        "links": sorted(line.split(":")[1].strip() for line in _lines(["ip", "-o", "link"])),
        "netns": sorted(p.name for p in Path("/run/netns").glob("*")) if Path("/run/netns").exists() else [],
        "mounts": [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(CACHE) in line],
        "cgroups": sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/k8s.io/**") if p.is_dir()),
        "run/netns": Path("/run/netns").exists(),
        "processes": _cluster_processes(),
        "files": sorted(
            str(p) for p in [*Path("/tmp").glob("slipway-dns-*"), Path("/var/lib/containers")] if p.exists()
        ),
    }


def _cluster_processes() -> list[str]:
    """Every process on the host that is this cluster's: it names the cache folder, or runs in a container of it."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        with suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cgroup = (proc / "cgroup").read_text()
            if (str(CACHE) in cmdline or "/k8s.io/" in cgroup) and _alive(int(proc.name)):
                found.append(f"{proc.name} {cmdline[:80]}")
    return sorted(found)


def status() -> int:
    running = {name: _pid(name) for name in [*PROCESSES, "containerd", "kubelet"]}
    for name, pid in running.items():
        print(f"{name:20} {pid or '-'}")
    print(f"netns {NS}: {'present' if NETNS.exists() else 'absent'}")
    return 0 if all(running.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "status", "reset", "exec"])
    parser.add_argument("--force", action="store_true", help="start, stop or reset even while a session holds it")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("the test cluster needs root (network and mount namespaces)")
    holder = in_use() if args.action in ("start", "stop", "reset") and not args.force else None
    if holder:
        raise SystemExit(f"the test cluster is in use by {holder}: wait for it to end (or pass --force)")
    if args.action == "start":
        start()
    elif args.action == "stop":
        stop()
    elif args.action == "reset":
        reset()
    elif args.action == "status":
        return status()
    else:
        command = [c for c in args.command if c != "--"]
        env = {**os.environ, "KUBECONFIG": str(RUN / "admin.kubeconfig")}
        return subprocess.run(in_ns(*command), env=env).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The real-cluster test harness: a Kubernetes control plane (and optionally
Flux and ephemeral-webhook) built from Go modules and run on 127.0.0.1.

Called as `tests/cluster/up [--flux] [--with-ephemeral]` and
`tests/cluster/down`; see tests/cluster/README.md and ../shared/DESIGN.md
("Real-cluster test harness"). Standard library only, plus PyYAML for
reading the project's manifests.

Everything `up` starts is recorded in STATE/processes (name, pid, the
process's start time); `down` stops exactly those, and only while the pid
still belongs to the process `up` started.
"""

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLUSTER = HERE.parent
WORKSPACE = CLUSTER.parent.parent
STATE = Path(os.environ.get("EPHEMERAL_CLUSTER_DIR", WORKSPACE / "target" / "e2e-cluster"))
LOGS = STATE / "logs"
PKI = STATE / "pki"

FLUX_CONTROLLERS = [
    "source-controller",
    "kustomize-controller",
    "helm-controller",
    "image-reflector-controller",
]
USERS = {
    # name: groups
    "admin": ["system:masters"],
    "alice": ["ephemeral-users"],
    "bob": ["ephemeral-users"],
}
# The webhook runs as the service account the Deployment uses, so the
# shipped RBAC (manifests/base/rbac.yaml) is what is exercised.
WEBHOOK_NAMESPACE = "ephemeral-system"
WEBHOOK_SA = "ephemeral-webhook"
TEST_NAMESPACE = "previews"


class HarnessError(Exception):
    pass


def log(message):
    print(f"cluster: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes


def proc_start_time(pid):
    """The start time of `pid` in clock ticks since boot, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; fields after ')' are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # exited, not yet reaped by its parent
        return None
    return fields[19]


def recorded():
    path = STATE / "processes"
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        name, pid, started = line.split()
        entries.append((name, int(pid), started))
    return entries


def alive(pid, started):
    return proc_start_time(pid) == started


def tail(path, lines=30):
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


class Process:
    def __init__(self, name, popen, logfile):
        self.name, self.popen, self.logfile = name, popen, logfile

    def check(self):
        code = self.popen.poll()
        if code is not None:
            raise HarnessError(
                f"{self.name} exited with status {code}; last lines of {self.logfile}:\n"
                + tail(self.logfile)
            )


def start(name, argv, env=None, cwd=None):
    LOGS.mkdir(parents=True, exist_ok=True)
    logfile = LOGS / f"{name}.log"
    out = open(logfile, "ab")
    full_env = dict(os.environ)
    # Loopback never goes through a proxy.
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        full_env.pop(var, None)
    full_env["NO_PROXY"] = full_env["no_proxy"] = "127.0.0.1,localhost"
    full_env.update(env or {})
    popen = subprocess.Popen(
        [str(a) for a in argv],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=full_env,
        cwd=cwd,
        start_new_session=True,
    )
    started = None
    for _ in range(100):
        started = proc_start_time(popen.pid)
        if started:
            break
        time.sleep(0.01)
    with open(STATE / "processes", "a") as f:
        f.write(f"{name} {popen.pid} {started}\n")
    return Process(name, popen, logfile)


def stop_all():
    entries = recorded()
    # Reverse start order: the webhook and Flux before the API server, etcd last.
    for name, pid, started in reversed(entries):
        if alive(pid, started):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.time() + 40
    for name, pid, started in reversed(entries):
        while alive(pid, started) and time.time() < deadline:
            time.sleep(0.1)
        if alive(pid, started):
            log(f"{name} (pid {pid}) ignored SIGTERM; killing it")
            os.kill(pid, signal.SIGKILL)
    (STATE / "processes").unlink(missing_ok=True)
    return len(entries)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, probe, process=None, timeout=120, interval=0.3):
    """Polls `probe()` until it returns a true value."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if process:
            process.check()
        try:
            result = probe()
            if result:
                return result
        except Exception as error:  # noqa: BLE001 - the probe's own failure is the message
            last = error
        time.sleep(interval)
    message = f"timed out after {timeout}s waiting for {what}"
    if last:
        message += f" (last error: {last})"
    if process:
        message += f"; last lines of {process.logfile}:\n{tail(process.logfile)}"
    raise HarnessError(message)


def https_get(url, token=None, ca=None, insecure=False):
    ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx)
    )
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def http_get(url):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def run(argv, check=True, input=None, env=None):
    full_env = dict(os.environ)
    full_env.update(env or {})
    result = subprocess.run(
        [str(a) for a in argv],
        input=input,
        capture_output=True,
        text=True,
        env=full_env,
    )
    if check and result.returncode != 0:
        raise HarnessError(
            f"`{' '.join(map(str, argv))}` failed ({result.returncode}):\n{result.stderr}{result.stdout}"
        )
    return result


# ---------------------------------------------------------------- building


def build(names):
    """Builds (or finds cached) the components; their build output goes to
    stderr as it comes, so a cold build shows its progress and its time."""
    result = subprocess.run([HERE / "build", *names], stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise HarnessError(f"building {' '.join(names)} failed (see the go output above)")
    out = result.stdout.split()
    return dict(zip(names, (Path(p) for p in out)))


def kubectl_path():
    return os.environ.get("KUBECTL") or shutil.which("kubectl") or "kubectl"


def kubectl(*args, user="admin", check=True, input=None):
    return run(
        [kubectl_path(), "--kubeconfig", STATE / f"{user}.kubeconfig", *args],
        check=check,
        input=input,
    )


def apply_docs(docs, server_side=True):
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})
    args = ["apply", "-f", "-"]
    if server_side:
        args[1:1] = ["--server-side", "--force-conflicts"]
    kubectl(*args, input=body)


# ---------------------------------------------------------------- PKI


def openssl(*args):
    run(["openssl", *args])


def make_pki():
    PKI.mkdir(parents=True, exist_ok=True)
    os.chmod(PKI, 0o700)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            "-keyout", PKI / "ca.key", "-out", PKI / "ca.crt", "-subj", "/CN=e2e-cluster-ca")
    serving(
        "apiserver",
        "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1,IP:10.0.0.1",
    )
    # The service-account signing key (the API server refuses to start without one).
    openssl("genrsa", "-out", PKI / "sa.key", "2048")
    openssl("rsa", "-in", PKI / "sa.key", "-pubout", "-out", PKI / "sa.pub")


def serving(name, sans):
    """A serving certificate signed by the cluster CA."""
    ext = PKI / f"{name}.ext"
    ext.write_text(
        f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n"
    )
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", PKI / f"{name}.key",
            "-out", PKI / f"{name}.csr", "-subj", f"/CN={name}")
    openssl("x509", "-req", "-in", PKI / f"{name}.csr", "-CA", PKI / "ca.crt",
            "-CAkey", PKI / "ca.key", "-CAcreateserial", "-days", "30",
            "-extfile", ext, "-out", PKI / f"{name}.crt")


def write_tokens():
    lines, tokens = [], {}
    for user, groups in USERS.items():
        token = base64.b32encode(os.urandom(20)).decode().lower()
        tokens[user] = token
        lines.append(f'{token},{user},{user},"{",".join(groups)}"')
    path = PKI / "tokens.csv"
    path.write_text("\n".join(lines) + "\n")
    os.chmod(path, 0o600)
    return tokens


def kubeconfig(path, server, token, namespace):
    ca = base64.b64encode((PKI / "ca.crt").read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": "user", "user": {"token": token}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "user", "namespace": namespace}}],
        "current-context": "e2e",
    }
    path.write_text(json.dumps(config, indent=1) + "\n")
    os.chmod(path, 0o600)


# ---------------------------------------------------------------- control plane


def start_etcd(bins):
    client, peer = free_port(), free_port()
    data = STATE / "etcd"
    data.mkdir(mode=0o700, exist_ok=True)
    proc = start("etcd", [
        bins["etcd"] / "server",  # go.etcd.io/etcd/server/v3 builds as `server`
        "--name=e2e",
        f"--data-dir={data}",
        f"--listen-client-urls=http://127.0.0.1:{client}",
        f"--advertise-client-urls=http://127.0.0.1:{client}",
        f"--listen-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=e2e=http://127.0.0.1:{peer}",
        "--listen-metrics-urls=",
        "--unsafe-no-fsync=true",
        "--quota-backend-bytes=4294967296",
        "--log-level=warn",
    ])
    wait_for("etcd /health", lambda: http_get(f"http://127.0.0.1:{client}/health")[0] == 200, proc, 60)
    return f"http://127.0.0.1:{client}"


def audit_policy():
    """Metadata-level audit of the requests ephemeral-webhook's identity makes,
    so tests can count the controller's API requests from the real server."""
    path = STATE / "audit-policy.json"
    path.write_text(json.dumps({
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [
            {"level": "Metadata",
             "users": [f"system:serviceaccount:{WEBHOOK_NAMESPACE}:{WEBHOOK_SA}"]},
            {"level": "None"},
        ],
    }))
    return path


def start_apiserver(bins, etcd, port):
    proc = start("kube-apiserver", [
        bins["kubernetes"] / "kube-apiserver",
        f"--etcd-servers={etcd}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        f"--tls-cert-file={PKI / 'apiserver.crt'}",
        f"--tls-private-key-file={PKI / 'apiserver.key'}",
        f"--client-ca-file={PKI / 'ca.crt'}",
        f"--token-auth-file={PKI / 'tokens.csv'}",
        "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-account-key-file={PKI / 'sa.pub'}",
        f"--service-account-signing-key-file={PKI / 'sa.key'}",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--endpoint-reconciler-type=none",
        "--allow-privileged=false",
        f"--audit-policy-file={audit_policy()}",
        f"--audit-log-path={LOGS / 'audit.log'}",
        "--audit-log-format=json",
        "--audit-log-mode=blocking",
        "--v=1",
    ])
    return proc


def start_controller_manager(bins, port):
    admin = STATE / "admin.kubeconfig"
    return start("kube-controller-manager", [
        bins["kubernetes"] / "kube-controller-manager",
        f"--kubeconfig={admin}",
        f"--authentication-kubeconfig={admin}",
        f"--authorization-kubeconfig={admin}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        # Deployments and ReplicaSets get their status (a Deployment scaled
        # to 0 is then complete, so Flux's health checks pass); their Pods
        # stay Pending: no scheduler or kubelet runs.
        "--controllers=garbage-collector-controller,namespace-controller,"
        "serviceaccount-controller,serviceaccount-token-controller,"
        "clusterrole-aggregation-controller,root-ca-certificate-publisher-controller,"
        "deployment-controller,replicaset-controller",
        f"--service-account-private-key-file={PKI / 'sa.key'}",
        f"--root-ca-file={PKI / 'ca.crt'}",
        "--use-service-account-credentials=false",
        "--concurrent-gc-syncs=5",
        "--v=1",
    ])


def wait_crds(names):
    if names:
        kubectl("wait", "--for=condition=established", "--timeout=60s", *[f"crd/{n}" for n in names])


def install_crds(files):
    names = []
    for f in files:
        result = kubectl("apply", "--server-side", "--force-conflicts", "-f", f, "-o", "name")
        names += [line.split("/", 1)[1] for line in result.stdout.split() if line.startswith("customresourcedefinition")]
    wait_crds(names)
    return names


def users_rbac():
    """What a team's developers get in `previews`: the Environments'
    lifecycle and a read of the catalog (the harness's own Role, the way a
    cluster admin would grant it)."""
    apply_docs([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": TEST_NAMESPACE}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "ephemeral-users", "namespace": TEST_NAMESPACE},
         "rules": [
             {"apiGroups": ["ephemeral.io"], "resources": ["environments"],
              "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
             {"apiGroups": ["ephemeral.io"], "resources": ["environments/status"], "verbs": ["get"]},
             {"apiGroups": ["ephemeral.io"], "resources": ["apptemplates", "appbundles"],
              "verbs": ["get", "list", "watch"]},
             {"apiGroups": ["kustomize.toolkit.fluxcd.io", "helm.toolkit.fluxcd.io",
                            "image.toolkit.fluxcd.io", "source.toolkit.fluxcd.io"],
              "resources": ["*"], "verbs": ["get", "list", "watch"]},
             {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["get", "list", "watch"]},
             {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
         ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "ephemeral-users", "namespace": TEST_NAMESPACE},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "ephemeral-users"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "ephemeral-users"}]},
    ])


def gc_canary(kcm):
    """Proves the garbage collector runs: a dependent of a deleted owner goes."""
    kubectl("-n", "default", "delete", "configmap", "gc-canary-owner", "gc-canary-dependent",
            "--ignore-not-found", "--wait=false")
    kubectl("-n", "default", "create", "configmap", "gc-canary-owner")
    uid = kubectl("-n", "default", "get", "configmap", "gc-canary-owner", "-o", "jsonpath={.metadata.uid}").stdout
    apply_docs([{
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "gc-canary-dependent", "namespace": "default",
                     "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
                                          "name": "gc-canary-owner", "uid": uid}]},
    }])
    kubectl("-n", "default", "delete", "configmap", "gc-canary-owner", "--wait=false")
    wait_for(
        "the garbage collector to delete the canary's dependent",
        lambda: kubectl("-n", "default", "get", "configmap", "gc-canary-dependent",
                        "--ignore-not-found", "-o", "name").stdout.strip() == "",
        kcm, timeout=120, interval=1,
    )


# ---------------------------------------------------------------- Flux and its sources


def module_dir(component, module):
    """Where the Go module cache holds `module`, as the wrapper pins it."""
    result = subprocess.run(
        ["go", "list", "-m", "-f", "{{.Dir}}", module],
        cwd=CLUSTER / "go" / component, capture_output=True, text=True,
        env={**os.environ, "GOFLAGS": "-mod=readonly", "GOTOOLCHAIN": "local"})
    if result.returncode != 0 or not result.stdout.strip():
        raise HarnessError(f"cannot locate {module}: {result.stderr}")
    return Path(result.stdout.strip())


def flux_crd_files():
    files = []
    for component in FLUX_CONTROLLERS:
        module = f"github.com/fluxcd/{component}"
        bases = module_dir(component, module) / "config" / "crd" / "bases"
        found = sorted(bases.glob("*.yaml"))
        if not found:
            raise HarnessError(f"no CRDs in {bases}")
        files += found
    # Sources first: kustomize- and helm-controller need them at start.
    return sorted(files, key=lambda p: "source.toolkit" not in p.name)


def start_git_server():
    repo = STATE / "git" / "repo.git"
    if repo.exists():
        shutil.rmtree(repo)
    repo.parent.mkdir(parents=True, exist_ok=True)
    run(["git", "init", "-q", "--bare", "-b", "main", repo])
    run(["git", "-C", repo, "config", "http.receivepack", "true"])
    port = free_port()
    proc = start("git-http", [sys.executable, HERE / "git_http.py", "127.0.0.1", port, repo.parent])
    url = f"http://127.0.0.1:{port}/repo.git"
    wait_for("the git server", lambda: http_get(f"{url}/info/refs?service=git-upload-pack")[0] == 200, proc, 30)
    return repo, url


def registry_binary():
    for candidate in ("docker-registry", "/usr/bin/docker-registry"):
        found = shutil.which(candidate)
        if found:
            return found
    raise HarnessError(
        "docker-registry is not installed (Debian package docker-registry; "
        "`apt-get install docker-registry` — .ci/run installs it)"
    )


def start_registry():
    port = free_port()
    storage = STATE / "registry"
    if storage.exists():
        shutil.rmtree(storage)
    storage.mkdir(parents=True)
    config = STATE / "registry.yml"
    config.write_text(
        "version: 0.1\nlog: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {storage}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    proc = start("registry", [registry_binary(), "serve", config])
    wait_for("the registry", lambda: http_get(f"http://127.0.0.1:{port}/v2/")[0] == 200, proc, 30)
    return f"127.0.0.1:{port}"


def start_flux(bins):
    kubectl("create", "namespace", "flux-system", check=False)
    env = {"KUBECONFIG": str(STATE / "admin.kubeconfig"), "RUNTIME_NAMESPACE": "flux-system"}
    procs = []
    storage_port = free_port()
    for component in FLUX_CONTROLLERS:
        health = free_port()
        argv = [bins[component] / component, f"--health-addr=127.0.0.1:{health}", "--metrics-addr=0",
                "--log-level=info", "--log-encoding=console", "--concurrent=4",
                "--requeue-dependency=5s"]
        if component == "source-controller":
            storage = STATE / "flux" / "source"
            storage.mkdir(parents=True, exist_ok=True)
            argv += [f"--storage-path={storage}", f"--storage-addr=127.0.0.1:{storage_port}",
                     f"--storage-adv-addr=127.0.0.1:{storage_port}"]
        if component == "image-reflector-controller":
            storage = STATE / "flux" / "image"
            storage.mkdir(parents=True, exist_ok=True)
            argv += [f"--storage-path={storage}", "--storage-value-log-file-size=16777216"]
        procs.append((start(component, argv, env=env), health))
    for proc, health in procs:
        wait_for(f"{proc.name} /readyz", lambda h=health: http_get(f"http://127.0.0.1:{h}/readyz")[0] == 200,
                 proc, 120)
    return procs


DOWNSCALER_HEALTH_PORT = 8081  # fixed in GoKubeDownscaler v1.3.4


def port_busy(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError:
            return True
    return False


def start_downscaler(bins, api_port):
    """GoKubeDownscaler, as a separate process, over the test namespace: a
    5 s scan, no grace period, Deployments only. Its health server always
    binds :8081; when that is taken (another cluster's downscaler on this
    host), it runs in its own network namespace, reaching the API server
    through lib/netns_relay.py."""
    argv = [
        bins["downscaler"] / "kubedownscaler",
        "-k", STATE / "admin.kubeconfig",
        "-interval=5s",
        "-grace-period=0s",
        f"-namespace={TEST_NAMESPACE}",
        "-include-resources=deployments",
    ]
    if port_busy(DOWNSCALER_HEALTH_PORT) and run(["unshare", "-n", "true"], check=False).returncode == 0:
        log(f"port {DOWNSCALER_HEALTH_PORT} is taken: the downscaler runs in its own network namespace")
        sock = STATE / "downscaler-api.sock"
        relay = [sys.executable, HERE / "netns_relay.py"]
        start("downscaler-relay", [*relay, "outside", sock, api_port])
        wait_for("the downscaler's API relay", sock.exists, None, 10, 0.1)
        argv = ["unshare", "-n", *relay, "inside", sock, api_port, "--", *argv]
    proc = start("downscaler", argv)
    # It has no readiness endpoint: its first scan is logged.
    wait_for("the downscaler's first scan",
             lambda: "scan" in (LOGS / "downscaler.log").read_text(errors="replace").lower(),
             proc, 60, 0.5)
    return proc


# ---------------------------------------------------------------- ephemeral-webhook


def cargo_build():
    cargo = os.environ.get("CARGO", "cargo")
    run([cargo, "build", "--locked", "-q", "-p", "ephemeral-webhook", "-p", "kubectl-ephemeral"])
    meta = json.loads(run([cargo, "metadata", "--format-version", "1", "--no-deps", "--offline"]).stdout)
    return Path(meta["target_directory"]) / "debug"


def rendered_manifests():
    import yaml  # PyYAML: .ci/run installs it when missing

    text = kubectl("kustomize", WORKSPACE / "manifests" / "default").stdout
    return [d for d in yaml.safe_load_all(text) if d]


def start_ephemeral(server):
    """Runs the workspace's `serve` as manifests/default does: its namespace,
    service account and RBAC applied, self-managed certificates (it creates
    its Secret and sets the caBundle of the real webhook configurations,
    which point at it by loopback `url`), and the Deployment's arguments."""
    target = cargo_build()
    docs = rendered_manifests()
    # No kubelet runs here: the Deployment, its Service and PDB have nothing
    # to do; everything else is applied as manifests/default has it.
    keep = [d for d in docs if d["kind"] in (
        "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")]
    apply_docs(keep)
    token = kubectl("-n", WEBHOOK_NAMESPACE, "create", "token", WEBHOOK_SA, "--duration=48h").stdout.strip()
    kubeconfig(STATE / "webhook.kubeconfig", server, token, WEBHOOK_NAMESPACE)
    listen, admin = free_port(), free_port()
    configs = []
    for doc in docs:
        if doc["kind"] not in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            continue
        for hook in doc["webhooks"]:
            path = hook["clientConfig"]["service"].get("path", "/")
            # No caBundle: serve sets it, as it does in a cluster.
            hook["clientConfig"] = {"url": f"https://127.0.0.1:{listen}{path}"}
        configs.append(doc)
    apply_docs(configs)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    receiver = free_port()
    args = [a for a in container["args"] if not a.startswith(
        ("--listen=", "--admin-listen=", "--receiver-listen=", "--log-format"))]
    args += [f"--listen=127.0.0.1:{listen}", f"--admin-listen=127.0.0.1:{admin}",
             f"--receiver-listen=127.0.0.1:{receiver}", "--cert-extra-names=127.0.0.1"]
    env = {
        "KUBECONFIG": str(STATE / "webhook.kubeconfig"),
        "POD_NAMESPACE": WEBHOOK_NAMESPACE,
        "POD_NAME": "ephemeral-webhook-e2e-0",
        "RUST_LOG": os.environ.get("RUST_LOG", "info"),
    }
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
    proc = start("ephemeral-webhook", [target / "ephemeral-webhook", *args], env=env)
    wait_for("ephemeral-webhook /readyz",
             lambda: http_get(f"http://127.0.0.1:{admin}/readyz")[0] == 200, proc, 90)
    # The API server trusts it once the caBundle is in: a server-side dry run
    # of an Environment goes through the mutating webhook.
    probe = json.dumps({"apiVersion": "ephemeral.io/v1alpha1", "kind": "Environment",
                        "metadata": {"name": "harness-probe", "namespace": TEST_NAMESPACE},
                        "spec": {"apps": [{"name": "probe", "kustomization": {
                            "path": "./", "sourceRef": {"kind": "GitRepository", "name": "none",
                                                        "namespace": "flux-system"}}}]}})
    wait_for("the API server to call ephemeral-webhook (caBundle set by serve)",
             lambda: "ephemeral.io/owner" in kubectl(
                 "create", "--dry-run=server", "-o", "json", "-f", "-", input=probe, check=False).stdout,
             proc, 60, 1)
    return proc, listen, admin, receiver, target


# ---------------------------------------------------------------- commands


def up(args):
    if any(alive(pid, started) for _, pid, started in recorded()):
        log("a cluster from an earlier `up` is still running: stopping it first")
        stop_all()
    for sub in ("etcd", "flux", "git", "registry"):
        shutil.rmtree(STATE / sub, ignore_errors=True)
    STATE.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(LOGS, ignore_errors=True)
    (STATE / "env").unlink(missing_ok=True)
    t0 = time.time()
    components = ["etcd", "kubernetes"] + (FLUX_CONTROLLERS if args.flux else []) \
        + (["downscaler"] if args.downscaler else [])
    bins = build(components)
    log(f"components ready in {time.time() - t0:.0f}s")
    make_pki()
    tokens = write_tokens()
    etcd = start_etcd(bins)
    api_port = free_port()
    server = f"https://127.0.0.1:{api_port}"
    apiserver = start_apiserver(bins, etcd, api_port)
    for user in USERS:
        kubeconfig(STATE / f"{user}.kubeconfig", server, tokens[user], TEST_NAMESPACE if user != "admin" else "default")
    wait_for("kube-apiserver /readyz",
             lambda: https_get(f"{server}/readyz", tokens["admin"], PKI / "ca.crt")[0] == 200,
             apiserver, 120)
    log(f"API server ready at {server} ({time.time() - t0:.0f}s)")
    crds = sorted((WORKSPACE / "manifests" / "crds").glob("*.ephemeral.io.yaml"))
    files = list(crds)
    if args.flux:
        files = flux_crd_files() + files
    install_crds(files)
    kcm = start_controller_manager(bins, free_port())
    users_rbac()
    gc_canary(kcm)
    log(f"garbage collector proven ({time.time() - t0:.0f}s)")
    env = {
        "KUBE_API": server,
        "KUBECONFIG_ADMIN": STATE / "admin.kubeconfig",
        "KUBECONFIG_ALICE": STATE / "alice.kubeconfig",
        "KUBECONFIG_BOB": STATE / "bob.kubeconfig",
        "AUDIT_LOG": LOGS / "audit.log",
    }
    if args.flux:
        repo, url = start_git_server()
        env.update(GIT_REPO_DIR=repo, GIT_URL=url)
        env["REGISTRY"] = start_registry()
        start_flux(bins)
        log(f"Flux ready ({time.time() - t0:.0f}s)")
    if args.downscaler:
        start_downscaler(bins, api_port)
        log(f"GoKubeDownscaler scanning {TEST_NAMESPACE} ({time.time() - t0:.0f}s)")
    if args.with_ephemeral:
        _, listen, admin, receiver, target = start_ephemeral(server)
        env.update(EPHEMERAL_WEBHOOK=f"https://127.0.0.1:{listen}",
                   EPHEMERAL_ADMIN=f"http://127.0.0.1:{admin}",
                   EPHEMERAL_RECEIVER=f"http://127.0.0.1:{receiver}",
                   KUBECONFIG_WEBHOOK=STATE / "webhook.kubeconfig",
                   EPHEMERAL_BIN_DIR=target)
        log(f"ephemeral-webhook serving ({time.time() - t0:.0f}s)")
    env["E2E_CLUSTER_FEATURES"] = " ".join(
        ["control-plane"] + (["flux"] if args.flux else []) + (["ephemeral"] if args.with_ephemeral else [])
        + (["downscaler"] if args.downscaler else []))
    lines = [f"{k}='{v}'" for k, v in env.items()]
    (STATE / "env").write_text("\n".join(lines) + "\n")
    log(f"up in {time.time() - t0:.0f}s; `source {STATE / 'env'}`; logs in {LOGS}")


def down(_args):
    count = stop_all()
    log(f"stopped {count} processes" if count else "nothing was running")


def main():
    parser = argparse.ArgumentParser(prog="tests/cluster")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="build what is missing and start the cluster")
    p_up.add_argument("--flux", action="store_true", help="also Flux, a git server and a registry")
    p_up.add_argument("--with-ephemeral", action="store_true",
                      help="also the workspace's ephemeral-webhook as admission webhook and controller")
    p_up.add_argument("--downscaler", action="store_true",
                      help="also GoKubeDownscaler (5 s scans of the test namespace)")
    sub.add_parser("down", help="stop what `up` started")
    args = parser.parse_args()
    try:
        {"up": up, "down": down}[args.command](args)
    except Exception as error:  # noqa: BLE001 - whatever failed, stop what was started
        log(f"error: {type(error).__name__}: {error}")
        if args.command == "up":
            log("stopping what was started")
            stop_all()
        sys.exit(1)


if __name__ == "__main__":
    main()

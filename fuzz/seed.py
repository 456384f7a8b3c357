#!/usr/bin/env python3
"""Seeds the fuzz corpora from the project's fixtures (run by fuzz/run).

- corpus/render_input: every example and render fixture file as it is, each
  Environment together with the examples' catalog in one file (render reads
  the catalog from its input), and the same as a JSON `v1 List`.
- corpus/admission_{mutate,validate}: AdmissionReview bodies about those
  Environments, shaped like the webhook tests' reviews (CREATE, UPDATE by the
  owner and by others, UPDATE of an object being deleted, DELETE, a
  subresource, a wrong kind) and malformed bodies like the server tests'.
- dict/ephemeral.dict: the keys and short strings of all of that, as a
  libFuzzer dictionary.

Only writes files that are missing, so re-running keeps a grown corpus.
"""

import hashlib
import json
import pathlib

import yaml

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
CORPUS = FUZZ / "corpus"
TOKENS = set()


def save(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    path = d / ("seed-" + hashlib.sha1(data).hexdigest())
    if not path.exists():
        path.write_bytes(data)


def tokens(value):
    if isinstance(value, dict):
        for k, v in value.items():
            TOKENS.add(str(k))
            tokens(v)
    elif isinstance(value, list):
        for v in value:
            tokens(v)
    elif isinstance(value, str) and len(value) <= 40:
        TOKENS.add(value)


def documents(path):
    try:
        return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError:
        return []  # a fixture that is broken on purpose: seeded as text only


files = sorted(
    list((ROOT / "examples").rglob("*.yaml"))
    + list((ROOT / "plugin/tests/fixtures").rglob("*.yaml"))
)
catalog_text = "".join(
    "---\n" + p.read_text() for p in sorted((ROOT / "examples/catalog").glob("*.yaml"))
)
environments = []
for path in files:
    text = path.read_text()
    save("render_input", text)
    docs = documents(path)
    tokens(docs)
    envs = [d for d in docs if isinstance(d, dict) and d.get("kind") == "Environment"]
    environments += envs
    if envs:
        save("render_input", catalog_text + "---\n" + text)
        catalog = [d for d in yaml.safe_load_all(catalog_text) if d is not None]
        save("render_input", json.dumps({"apiVersion": "v1", "kind": "List", "items": catalog + envs}))

OWNER = "ephemeral.io/owner"
UPTIME = "ephemeral.io/uptime"


def review(op, user, obj, old, groups=("system:authenticated",), kind=None, sub=None):
    meta = (obj or old or {}).get("metadata", {})
    request = {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": kind or {"group": "ephemeral.io", "version": "v1alpha1", "kind": "Environment"},
        "resource": {"group": "ephemeral.io", "version": "v1alpha1", "resource": "environments"},
        "name": meta.get("name", ""),
        "namespace": meta.get("namespace", ""),
        "operation": op,
        "userInfo": {"username": user, "groups": list(groups)},
        "object": obj,
        "oldObject": old,
        "dryRun": False,
    }
    if sub:
        request["subResource"] = sub
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def owned(env, owner):
    env = json.loads(json.dumps(env))
    env.setdefault("metadata", {}).setdefault("annotations", {})[OWNER] = owner
    return env


reviews = []
for env in environments:
    alice = owned(env, "alice")
    changed = json.loads(json.dumps(alice))
    changed.setdefault("spec", {})["sourceBranch"] = "feature/other"
    deleting = json.loads(json.dumps(changed))
    deleting["metadata"]["deletionTimestamp"] = "2026-11-21T10:00:00Z"
    labelled = json.loads(json.dumps(alice))
    labelled["metadata"]["labels"] = {"team": "payments"}
    reviews += [
        review("CREATE", "alice", env, None),
        review("UPDATE", "alice", changed, alice),
        review("UPDATE", "alice", labelled, alice),
        review("UPDATE", "bob", owned(changed, "bob"), alice),
        review("UPDATE", "alice", deleting, alice),
        review("DELETE", "alice", None, alice),
        review("DELETE", "bob", None, alice),
        review("DELETE", "carol", None, env, groups=["platform-admins"]),
        review("UPDATE", "alice", changed, alice, sub="status"),
    ]
configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "ephemeral"}}
reviews.append(review("CREATE", "alice", configmap, None, kind={"group": "", "version": "v1", "kind": "ConfigMap"}))
reviews.append(review("CONNECT", "alice", None, None))
tokens(reviews)
TOKENS.update([OWNER, UPTIME, "CREATE", "UPDATE", "DELETE", "CONNECT", "admission.k8s.io/v1beta1"])
malformed = [
    b"",
    b"not json",
    b"[]",
    b'{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u"}}',
    b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}',
    b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u"}}',
    b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":7}',
]
for target in ("admission_mutate", "admission_validate"):
    for r in reviews:
        save(target, json.dumps(r))
    for body in malformed:
        save(target, body)

(FUZZ / "dict").mkdir(exist_ok=True)
lines = sorted(json.dumps(t) for t in TOKENS if t and t.isascii() and t.isprintable() and len(t) <= 64)
(FUZZ / "dict/ephemeral.dict").write_text("".join(line + "\n" for line in lines))
for target in ("render_input", "admission_mutate", "admission_validate"):
    print(f"{target}: {len(list((CORPUS / target).iterdir()))} inputs in fuzz/corpus/{target}")

#!/usr/bin/env python3
"""Drives privacyIDEA push flows (poll-only) the way its smartphone app and a backend do, for
the side-by-side comparison in docs/performance.md ("privacyIDEA"). Only this driver is ours;
privacyIDEA is installed from PyPI into a venv outside the repository and run as its own
server (gunicorn, SQLite). The steps and the commands are in README.md next to this file.

One flow, as a login with privacyIDEA's push token and no push gateway ("poll only"):
  1. the backend: POST /validate/triggerchallenge (admin JWT)       -> transaction_id
  2. the phone:   GET  /ttype/push serial, timestamp, signature      -> the open challenge (nonce)
  3. the phone:   POST /ttype/push serial, nonce, signature          -> answered
  4. the backend: POST /validate/check user, pass="", transaction_id -> ACCEPT
A flow counts only when step 4 answers ACCEPT. The phone's key is RSA 2048 (PKCS#1 v1.5,
SHA-256), as privacyIDEA verifies it; the server's own key per token is its RSA 4096.

The server's CPU is read from /proc for the gunicorn master and its workers (--server-pid,
the master), before and after the timed part, as the load tool reads ours.
"""

import argparse
import base64
import datetime
import json
import multiprocessing
import os
import sys
import threading
import time
import urllib.parse

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

REALM = "benchrealm"


def b32(data: bytes) -> str:
    return base64.b32encode(data).decode()


def sign(key, text: str) -> str:
    return b32(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256()))


def ok(response: requests.Response) -> dict:
    body = response.json()
    if response.status_code != 200 or not body.get("result", {}).get("status"):
        raise RuntimeError(f"{response.request.method} {response.url}: {response.status_code} {body}")
    return body


def admin_token(url: str, password: str) -> str:
    body = ok(requests.post(f"{url}/auth", data={"username": "admin", "password": password}))
    return body["result"]["value"]["token"]


def setup(url: str, password: str, users: int, users_file: str) -> list:
    """Resolver, realm, policies, and one enrolled push token per user; returns the tokens."""
    session = requests.Session()
    session.headers["PI-Authorization"] = admin_token(url, password)
    with open(users_file, "w") as f:
        for i in range(users):
            f.write(f"bench{i}:x:{10000 + i}:{10000 + i}:Bench {i},,,:/home/bench{i}:/bin/sh\n")
    ok(session.post(f"{url}/resolver/benchresolver",
                    json={"type": "passwdresolver", "fileName": users_file}))
    ok(session.post(f"{url}/realm/{REALM}", json={"resolvers": "benchresolver"}))
    ok(session.post(f"{url}/policy/bench_push_enrol", json={
        "scope": "enrollment", "active": True, "realm": REALM,
        "action": {"push_firebase_configuration": "poll only",
                   "push_registration_url": f"{url}/ttype/push", "push_ttl": "10"}}))
    ok(session.post(f"{url}/policy/bench_push_auth", json={
        "scope": "authentication", "active": True, "realm": REALM,
        "action": {"push_allow_polling": "allow"}}))
    tokens = []
    for i in range(users):
        user = f"bench{i}"
        body = ok(session.post(f"{url}/token/init",
                               data={"type": "push", "genkey": "1", "user": user, "realm": REALM}))
        detail = body["detail"]
        serial = detail["serial"]
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        ok(requests.post(f"{url}/ttype/push", data={
            "serial": serial, "fbtoken": "poll-only", "enrollment_credential": detail["enrollment_credential"],
            "pubkey": base64.urlsafe_b64encode(public).decode()}))
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        tokens.append({"user": user, "serial": serial, "key": pem})
    return tokens


def flow(session: requests.Session, phone: requests.Session, url: str, token: dict, key) -> bool:
    trigger = ok(session.post(f"{url}/validate/triggerchallenge",
                              data={"user": token["user"], "realm": REALM}))
    transaction_id = trigger["detail"]["transaction_id"]
    serial = token["serial"]
    timestamp = datetime.datetime.now(datetime.timezone.utc).isoformat()
    polled = ok(phone.get(f"{url}/ttype/push", params={
        "serial": serial, "timestamp": timestamp, "signature": sign(key, f"{serial}|{timestamp}")}))
    challenges = polled["result"]["value"]
    if not challenges:
        raise RuntimeError(f"no open challenge for {serial}")
    for challenge in challenges:
        nonce = challenge["nonce"]
        ok(phone.post(f"{url}/ttype/push", data={
            "serial": serial, "nonce": nonce, "signature": sign(key, f"{nonce}|{serial}")}))
    check = ok(session.post(f"{url}/validate/check", data={
        "user": token["user"], "realm": REALM, "pass": "", "transaction_id": transaction_id}))
    return check["result"].get("authentication") == "ACCEPT"


def worker(url: str, jwt: str, tokens: list, deadline: float, results) -> None:
    counts = {"flows": 0, "failed": 0, "errors": []}
    lock = threading.Lock()

    def user(token: dict) -> None:
        session = requests.Session()
        session.headers["PI-Authorization"] = jwt
        phone = requests.Session()
        key = serialization.load_pem_private_key(token["key"].encode(), None)
        while time.time() < deadline:
            try:
                accepted = flow(session, phone, url, token, key)
            except Exception as error:  # counted and shown, the run goes on
                with lock:
                    counts["failed"] += 1
                    if len(counts["errors"]) < 3:
                        counts["errors"].append(str(error)[:300])
                continue
            with lock:
                counts["flows" if accepted else "failed"] += 1

    threads = [threading.Thread(target=user, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.put(counts)


def process_tree_cpu_seconds(pid: int) -> float:
    """utime + stime of the process and its children (live ones and those it has waited for)."""
    pids = [pid]
    try:
        children = open(f"/proc/{pid}/task/{pid}/children").read().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    total = 0.0
    for p in pids:
        try:
            stat = open(f"/proc/{p}/stat").read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        # utime, stime, cutime, cstime: fields 14-17 of stat.
        total += sum(int(f) for f in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:5001")
    parser.add_argument("--admin-password", default="benchadmin")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--processes", type=int, default=4, help="client processes (threads share them)")
    parser.add_argument("--server-pid", type=int, help="the gunicorn master: its CPU and its workers'")
    parser.add_argument("--tokens", default="/tmp/privacyidea-bench-tokens.json",
                        help="enrolled tokens, reused across runs")
    parser.add_argument("--users-file", default="/tmp/privacyidea-bench-users")
    args = parser.parse_args()

    if os.path.exists(args.tokens):
        tokens = json.load(open(args.tokens))
    else:
        tokens = setup(args.url, args.admin_password, args.users, args.users_file)
        json.dump(tokens, open(args.tokens, "w"))
    tokens = tokens[: args.users]
    if len(tokens) < args.users:
        sys.exit(f"{args.tokens} holds {len(tokens)} tokens; remove it to enrol {args.users}")
    jwt = admin_token(args.url, args.admin_password)

    processes = max(1, min(args.processes, len(tokens)))
    results = multiprocessing.Queue()
    cpu_before = process_tree_cpu_seconds(args.server_pid) if args.server_pid else None
    started = time.time()
    deadline = started + args.seconds
    workers = [multiprocessing.Process(target=worker, args=(args.url, jwt, tokens[i::processes], deadline, results))
               for i in range(processes)]
    for w in workers:
        w.start()
    counts = [results.get() for _ in workers]
    for w in workers:
        w.join()
    elapsed = time.time() - started
    cpu_after = process_tree_cpu_seconds(args.server_pid) if args.server_pid else None

    flows = sum(c["flows"] for c in counts)
    failed = sum(c["failed"] for c in counts)
    print(f"privacyIDEA push (poll only): {args.users} users, {elapsed:.1f} s")
    print(f"  flows accepted: {flows} ({flows / elapsed:.1f} per second), failed: {failed}")
    for c in counts:
        for e in c["errors"]:
            print(f"  error: {e}")
    if cpu_before is not None and flows:
        cpu = cpu_after - cpu_before
        print(f"  server CPU: {cpu:.2f} s, {cpu / flows * 1e6:.0f} µs per flow")


if __name__ == "__main__":
    main()

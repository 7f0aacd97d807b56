"""Issue #20 through the official Python SDK (`authsignal` from PyPI) against the local server.

PyPI's newest `authsignal` (4.1.0, pinned in infra/scripts/test-all.sh) has track, users,
validate_challenge and actions, but no methods for sessions, query users, claim or the OTP
challenge/verify. Those are driven through the SDK's own authenticated transport
(`client.session`: its Basic auth, headers, None-stripping and `ApiException` mapping) with the
paths and bodies the Node SDK 2.21 sends, which is what a Python backend on this SDK does today.
The device side is `trusted-device device` (the software phone of infra/src/device.rs).

Environment: as tests/node-compat (TD_BASE_URL, TD_TENANT_ID, TD_SECRET_KEY,
TD_OTHER_SECRET_KEY, TD_SESSION_CLIENT_ID, TD_ACCESS_TOKEN_TTL), and TD_CLI (the binary).
Run: python tests/python-compat/server_api_test.py (exits non-zero on the first failure).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

from authsignal.client import ApiException, AuthsignalClient

BASE = os.environ["TD_BASE_URL"].rstrip("/")
TENANT = os.environ["TD_TENANT_ID"]
CLIENT_ID = os.environ["TD_SESSION_CLIENT_ID"]
ACCESS_TTL = int(os.environ["TD_ACCESS_TOKEN_TTL"])
CLI = os.environ.get("TD_CLI", "./target/debug/trusted-device")

client = AuthsignalClient(os.environ["TD_SECRET_KEY"], api_url=BASE, timeout=10)
other = AuthsignalClient(os.environ["TD_OTHER_SECRET_KEY"], api_url=BASE, timeout=10)


def post(sdk, path, body):
    """POST through the SDK's transport; the decamelized JSON answer, as the SDK returns it."""
    response = sdk.session.post(url=f"{sdk.api_url}{path}", data=json.dumps(body))
    return getattr(response, "decamelized_content", None)


def get(sdk, path, params):
    return sdk.session.get(url=f"{sdk.api_url}{path}", params=params).decamelized_content


def fails(call, status, code):
    try:
        call()
    except ApiException as error:
        assert (error.status_code, error.error_code) == (status, code), (
            f"expected {status} {code}, got {error.status_code} {error.error_code}: "
            f"{error.error_description}"
        )
        return error
    raise AssertionError(f"expected {status} {code}, the call succeeded")


def device(key_file, *args):
    env = dict(os.environ, TRUSTED_DEVICE_URL=BASE, TRUSTED_DEVICE_TENANT_ID=TENANT)
    out = subprocess.run(
        [CLI, "device", *args, "--key-file", key_file, "--json"],
        env=env, check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)


def succeeded_challenge(key_dir, user_id=None, attributes=None):
    user_id = user_id or f"py-{uuid.uuid4()}"
    if attributes:
        client.update_user(user_id, attributes)
    key_file = os.path.join(key_dir, f"{user_id}.pem")
    enrol = client.track(user_id, "addAuthenticator")
    device(key_file, "enroll", "--token", enrol["token"])
    sign_in = client.track(user_id, "signIn")
    assert sign_in["state"] == "CHALLENGE_REQUIRED", sign_in
    verified = device(key_file, "verify", "--token", sign_in["token"])
    return user_id, verified["token"], key_file


def sign_in_with(user_id, key_file):
    sign_in = client.track(user_id, "signIn")
    return device(key_file, "verify", "--token", sign_in["token"])["token"]


def test_sessions(key_dir):
    user_id, token, key_file = succeeded_challenge(key_dir, attributes={"email": "py@example.com"})
    assert client.validate_challenge({"token": token})["is_valid"] is True
    session = post(client, "/sessions", {"clientId": CLIENT_ID, "token": token, "action": "signIn"})
    assert session["refresh_token"].startswith("rt1.")
    valid = post(client, "/sessions/validate", {"accessToken": session["access_token"], "clientIds": [CLIENT_ID]})
    assert valid["user"]["user_id"] == user_id and valid["user"]["email"] == "py@example.com", valid
    assert valid["verification_method"] == "DEVICE"
    fails(lambda: post(client, "/sessions", {"clientId": CLIENT_ID, "token": token}), 400, "token_already_used")

    # Rotation; reuse of the first refresh token revokes the family.
    second = post(client, "/sessions/refresh", {"refreshToken": session["refresh_token"]})
    post(client, "/sessions/validate", {"accessToken": second["access_token"]})
    fails(lambda: post(client, "/sessions/refresh", {"refreshToken": session["refresh_token"]}), 401, "refresh_token_reused")
    fails(lambda: post(client, "/sessions/validate", {"accessToken": second["access_token"]}), 401, "session_revoked")
    fails(lambda: post(client, "/sessions/refresh", {"refreshToken": second["refresh_token"]}), 401, "session_revoked")

    # Revoke one session, then all of a user's.
    third = post(client, "/sessions", {"clientId": CLIENT_ID, "token": sign_in_with(user_id, key_file)})
    post(client, "/sessions/revoke", {"accessToken": third["access_token"]})
    fails(lambda: post(client, "/sessions/validate", {"accessToken": third["access_token"]}), 401, "session_revoked")
    fourth = post(client, "/sessions", {"clientId": CLIENT_ID, "token": sign_in_with(user_id, key_file)})
    post(client, "/sessions/user/revoke", {"userId": user_id})
    fails(lambda: post(client, "/sessions/validate", {"accessToken": fourth["access_token"]}), 401, "session_revoked")

    # Another tenant's secret: nothing here is valid for it.
    fifth = post(client, "/sessions", {"clientId": CLIENT_ID, "token": sign_in_with(user_id, key_file)})
    fails(lambda: post(other, "/sessions/validate", {"accessToken": fifth["access_token"]}), 401, "invalid_token")
    fails(lambda: post(other, "/sessions/refresh", {"refreshToken": fifth["refresh_token"]}), 401, "invalid_refresh_token")
    fails(lambda: post(other, "/sessions", {"clientId": CLIENT_ID, "token": sign_in_with(user_id, key_file)}), 401, "invalid_token")

    # Expiry, checked in code (the TTL configured for this tenant is short).
    time.sleep(ACCESS_TTL + 1)
    fails(lambda: post(client, "/sessions/validate", {"accessToken": fifth["access_token"]}), 401, "expired_token")
    fresh = post(client, "/sessions/refresh", {"refreshToken": fifth["refresh_token"]})
    post(client, "/sessions/validate", {"accessToken": fresh["access_token"]})


def test_query_users():
    email = f"{uuid.uuid4()}@example.com"
    ids = sorted(f"py-{uuid.uuid4()}" for _ in range(3))
    for i, user_id in enumerate(ids):
        client.update_user(user_id, {"email": email, "username": f"u-{user_id}", "phoneNumber": f"+64{int(time.time())}{i}"})
    page = get(client, "/users", {"email": email, "limit": 2})
    assert [u["user_id"] for u in page["users"]] == ids[:2], page
    rest = get(client, "/users", {"email": email, "limit": 2, "lastEvaluatedUserId": page["last_evaluated_user_id"]})
    assert [u["user_id"] for u in rest["users"]] == ids[2:], rest
    assert "last_evaluated_user_id" not in rest
    assert [u["user_id"] for u in get(client, "/users", {"username": f"u-{ids[1]}"})["users"]] == [ids[1]]
    client.delete_user(ids[0])
    assert [u["user_id"] for u in get(client, "/users", {"email": email})["users"]] == ids[1:]
    token = client.track(ids[1], "signIn")["token"]
    by_token = get(client, "/users", {"token": token})
    assert [u["user_id"] for u in by_token["users"]] == [ids[1]] and by_token["token_payload"]["sub"] == ids[1]
    fails(lambda: get(client, "/users", {}), 400, "invalid_request")
    assert get(other, "/users", {"email": email})["users"] == []


def test_claim_and_otp():
    fails(lambda: post(client, "/claim", {"challengeId": "0" * 64, "userId": "nobody"}), 404, "challenge_not_found")
    for method in ("SMS", "EMAIL_OTP", "WHATSAPP"):
        error = fails(
            lambda: post(client, "/challenge", {"verificationMethod": method, "action": "signIn", "email": "a@example.com"}),
            400, "verification_method_not_supported",
        )
        assert "not supported by trusted-device" in error.error_description
    fails(lambda: post(client, "/verify", {"challengeId": "x", "verificationCode": "123456"}), 400, "verification_method_not_supported")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as key_dir:
        for name, run in [
            ("sessions", lambda: test_sessions(key_dir)),
            ("query users", test_query_users),
            ("claim and OTP", test_claim_and_otp),
        ]:
            run()
            print(f"ok - python sdk: {name}")
    sys.exit(0)

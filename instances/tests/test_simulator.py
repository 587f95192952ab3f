"""The provider simulator, over real HTTP: a simulator on a free port, a local webhook receiver."""

import base64
import hashlib
import hmac
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import qrcode
import requests
from django.core.management import call_command

from instances.simulator.media import sample_ogg, sample_pdf, sample_png
from instances.simulator.server import run_in_thread

EVO_KEY = {"apikey": "sim-evolution-key"}
META_TOKEN = {"Authorization": "Bearer sim-meta-token"}
PHONE_ID, WABA_ID, APP_SECRET = "100000000000001", "200000000000001", "sim-app-secret"
CUSTOMER = "+5514999999999"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


# -- fixtures ----------------------------------------------------------------------------------
@dataclass
class Captured:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)


class Receiver:
    """A webhook endpoint: records every POST; answers GET hub.challenge like a Meta endpoint."""

    def __init__(self):
        self.records: list[Captured] = []
        self.answers: list[int] = []  # status codes to answer first (then 200)
        self.verify_token = "verify-me"
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.cond:
                    receiver.records.append(Captured(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    status = receiver.answers.pop(0) if receiver.answers else 200
                    receiver.cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                query = parse_qs(urlsplit(self.path).query)
                ok = query.get("hub.verify_token") == [receiver.verify_token]
                body = query["hub.challenge"][0].encode() if ok else b"forbidden"
                self.send_response(200 if ok else 403)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def wait_for(self, predicate, count: int = 1, timeout: float = 5.0) -> list[Captured]:
        with self.cond:
            self.cond.wait_for(lambda: len([r for r in self.records if predicate(r)]) >= count, timeout)
            return [r for r in self.records if predicate(r)]

    def evolution(self, event: str, count: int = 1, timeout: float = 5.0) -> list[dict]:
        found = self.wait_for(lambda r: r.json.get("event") == event, count, timeout)
        return [r.json for r in found]

    def meta(self, count: int = 1, timeout: float = 5.0) -> list[Captured]:
        return self.wait_for(lambda r: r.path.startswith("/meta"), count, timeout)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def sim():
    handle = run_in_thread(webhook_delay=0.01, webhook_attempts=3)
    yield handle
    handle.stop()


def create_instance(sim, receiver, name="acme", **extra):
    body = {
        "instanceName": name,
        "integration": "WHATSAPP-BAILEYS",
        "qrcode": True,
        "webhook": {
            "url": f"{receiver.url}/evolution",
            "headers": {"authorization": "Bearer hook-secret"},
            "events": [],
        },
        **extra,
    }
    response = requests.post(f"{sim.url}/instance/create", json=body, headers=EVO_KEY, timeout=5)
    assert response.status_code == 201, response.text
    return response.json()


def connected_instance(sim, receiver, name="acme"):
    created = create_instance(sim, receiver, name)
    assert requests.post(f"{sim.url}/_sim/scan", json={"instance": name}, timeout=5).status_code == 200
    receiver.evolution("connection.update", count=2)
    return created


def subscribe_meta(sim, receiver):
    response = requests.post(
        f"{sim.url}/v23.0/{WABA_ID}/subscribed_apps",
        json={"override_callback_uri": f"{receiver.url}/meta", "verify_token": receiver.verify_token},
        headers=META_TOKEN,
        timeout=5,
    )
    assert response.json() == {"success": True}, response.text


def meta_send_text(sim, to=CUSTOMER, body="Olá"):
    payload = {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": body}}
    return requests.post(f"{sim.url}/v23.0/{PHONE_ID}/messages", json=payload, headers=META_TOKEN, timeout=5)


def evo_send_text(sim, name="acme", number="5514999999999", text="Olá"):
    return requests.post(
        f"{sim.url}/message/sendText/{name}", json={"number": number, "text": text}, headers=EVO_KEY, timeout=5
    )


def inject(sim, **spec):
    response = requests.post(f"{sim.url}/_sim/inbound", json=spec, timeout=5)
    assert response.status_code == 201, response.text
    return response.json()


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """A strict little PNG reader (8-bit greyscale, unfiltered rows, as the simulator writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, idat, width, height = 8, b"", 0, 0
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, chunk = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + chunk) & 0xFFFFFFFF
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert (depth, color) == (8, 0)
        elif kind == b"IDAT":
            idat += chunk
        offset += 12 + length
    raw = zlib.decompress(idat)
    rows = [raw[y * (width + 1) : (y + 1) * (width + 1)] for y in range(height)]
    assert all(row[0] == 0 for row in rows)
    return width, height, [row[1:] for row in rows]


def index_to_bytes(value: dict) -> bytes:
    return bytes(value[str(i)] for i in range(len(value)))


# -- Evolution: instances and connection --------------------------------------------------------
def test_evolution_create_returns_decodable_qr_png(sim, receiver):
    created = create_instance(sim, receiver)

    assert created["instance"]["status"] == "connecting"
    assert created["hash"] and created["webhook"]["webhookUrl"] == f"{receiver.url}/evolution"
    qr = created["qrcode"]
    assert qr["pairingCode"] is None and qr["count"] == 1 and qr["code"].startswith("2@")
    assert qr["base64"].startswith("data:image/png;base64,")
    width, height, rows = decode_png(base64.b64decode(qr["base64"].split(",", 1)[1]))
    expected = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_M)
    expected.add_data(qr["code"])
    expected.make(fit=True)
    matrix = expected.get_matrix()
    scale = width // len(matrix)
    assert width == height == scale * len(matrix)
    assert [[rows[y * scale][x * scale] == 0 for x in range(len(matrix))] for y in range(len(matrix))] == matrix
    updated = receiver.evolution("qrcode.updated")[0]
    assert updated["data"]["qrcode"]["code"] == qr["code"]


def test_evolution_create_with_number_gives_pairing_code(sim, receiver):
    created = create_instance(sim, receiver, number="5514988887777")

    assert len(created["qrcode"]["pairingCode"]) == 8


def test_evolution_scan_delivers_connection_open_with_configured_header(sim, receiver):
    create_instance(sim, receiver)

    response = requests.post(f"{sim.url}/_sim/scan", json={"instance": "acme", "profileName": "Acme"}, timeout=5)

    assert response.json()["state"] == "open"
    opened = receiver.wait_for(lambda r: r.json["event"] == "connection.update" and r.json["data"]["state"] == "open")
    assert opened[0].headers["authorization"] == "Bearer hook-secret"
    data = opened[0].json["data"]
    assert data["wuid"].endswith("@s.whatsapp.net") and data["profileName"] == "Acme" and data["statusReason"] == 200
    state = requests.get(f"{sim.url}/instance/connectionState/acme", headers=EVO_KEY, timeout=5).json()
    assert state == {"instance": {"instanceName": "acme", "state": "open"}}


def test_evolution_auto_scan_opens_after_delay():
    with run_in_thread(webhook_delay=0.01, auto_scan=0.2) as handle:
        requests.post(
            f"{handle.url}/instance/create", json={"instanceName": "auto", "qrcode": True}, headers=EVO_KEY, timeout=5
        )
        state = requests.get(f"{handle.url}/instance/connectionState/auto", headers=EVO_KEY, timeout=5).json()
        assert state["instance"]["state"] == "connecting"
        time.sleep(0.5)
        state = requests.get(f"{handle.url}/instance/connectionState/auto", headers=EVO_KEY, timeout=5).json()
        assert state["instance"]["state"] == "open"


def test_evolution_wrong_apikey_answers_401_envelope(sim, receiver):
    create_instance(sim, receiver)
    url = f"{sim.url}/instance/connectionState/acme"

    wrong = requests.get(url, headers={"apikey": "nope"}, timeout=5)
    missing = requests.get(url, timeout=5)

    expected = {"status": 401, "error": "Unauthorized", "response": {"message": "Unauthorized"}}
    assert (wrong.status_code, wrong.json()) == (401, expected)
    assert (missing.status_code, missing.json()) == (401, expected)


def test_evolution_instance_token_is_scoped_to_its_instance(sim, receiver):
    token = create_instance(sim, receiver, "one")["hash"]
    create_instance(sim, receiver, "two")

    own = requests.get(f"{sim.url}/instance/connectionState/one", headers={"apikey": token}, timeout=5)
    other = requests.get(f"{sim.url}/instance/connectionState/two", headers={"apikey": token}, timeout=5)
    listed = requests.get(f"{sim.url}/instance/fetchInstances", headers={"apikey": token}, timeout=5)

    assert own.status_code == 200 and other.status_code == 401
    assert [row["name"] for row in listed.json()] == ["one"]


def test_evolution_name_taken_answers_403(sim, receiver):
    create_instance(sim, receiver)

    again = requests.post(f"{sim.url}/instance/create", json={"instanceName": "acme"}, headers=EVO_KEY, timeout=5)

    assert again.status_code == 403
    assert again.json() == {
        "status": 403,
        "error": "Forbidden",
        "response": {"message": ['This name "acme" is already in use.']},
    }


def test_evolution_unknown_instance_answers_404(sim):
    response = requests.get(f"{sim.url}/instance/connectionState/ghost", headers=EVO_KEY, timeout=5)

    assert response.status_code == 404
    assert response.json()["response"]["message"] == ['The "ghost" instance does not exist']


def test_evolution_logout_delivers_close_and_logout_webhooks(sim, receiver):
    connected_instance(sim, receiver)

    response = requests.delete(f"{sim.url}/instance/logout/acme", headers=EVO_KEY, timeout=5)

    assert response.json()["response"]["message"] == "Instance logged out"
    closed = receiver.wait_for(lambda r: r.json["event"] == "connection.update" and r.json["data"]["state"] == "close")
    assert closed[0].json["data"]["statusReason"] == 401
    assert receiver.evolution("logout.instance")[0]["data"] is None
    again = requests.delete(f"{sim.url}/instance/logout/acme", headers=EVO_KEY, timeout=5)
    assert again.status_code == 400


def test_evolution_webhook_set_then_find(sim, receiver):
    create_instance(sim, receiver)
    hook = {"enabled": True, "url": f"{receiver.url}/other", "byEvents": True, "events": ["MESSAGES_UPSERT"]}

    saved = requests.post(f"{sim.url}/webhook/set/acme", json={"webhook": hook}, headers=EVO_KEY, timeout=5)
    found = requests.get(f"{sim.url}/webhook/find/acme", headers=EVO_KEY, timeout=5).json()

    assert saved.status_code == 201
    assert found["url"] == f"{receiver.url}/other" and found["events"] == ["MESSAGES_UPSERT"]
    assert found["webhookByEvents"] is True
    requests.post(f"{sim.url}/_sim/scan", json={"instance": "acme"}, timeout=5)
    inject(sim, instance="acme", **{"from": CUSTOMER}, text="Oi")
    delivered = receiver.wait_for(lambda r: r.path == "/other/messages-upsert")
    assert delivered[0].json["event"] == "messages.upsert"
    assert not receiver.wait_for(lambda r: r.path.startswith("/other/connection"), timeout=0.2)


def test_evolution_jwt_key_header_becomes_a_signed_bearer(sim, receiver):
    create_instance(
        sim, receiver, webhook={"url": f"{receiver.url}/evolution", "headers": {"jwt_key": "k"}, "events": []}
    )

    captured = receiver.evolution("qrcode.updated")
    record = receiver.wait_for(lambda r: r.json is not None and r.json.get("event") == "qrcode.updated")[0]

    assert captured
    assert "jwt_key" not in record.headers
    header, claims, signature = record.headers["authorization"].removeprefix("Bearer ").split(".")
    expected = hmac.new(b"k", f"{header}.{claims}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "==") == expected
    assert json.loads(base64.urlsafe_b64decode(claims + "=="))["app"] == "evolution"


# -- Evolution: messaging ------------------------------------------------------------------------
def test_evolution_send_text_answers_201_and_delivers_statuses_in_order(sim, receiver):
    connected_instance(sim, receiver)

    response = evo_send_text(sim, text="Olá Maria")

    assert response.status_code == 201
    answer = response.json()
    key_id = answer["key"]["id"]
    assert key_id.startswith("3EB0") and len(key_id) == 22
    assert answer["key"] == {"remoteJid": "5514999999999@s.whatsapp.net", "fromMe": True, "id": key_id}
    assert answer["pushName"] == "Você" and answer["status"] == "PENDING" and answer["source"] == "web"
    assert answer["message"] == {"conversation": "Olá Maria"} and answer["messageType"] == "conversation"
    updates = receiver.evolution("messages.update", count=3)
    statuses = [u["data"]["status"] for u in updates if u["data"]["keyId"] == key_id]
    assert statuses == ["SERVER_ACK", "DELIVERY_ACK", "READ"]
    events = [r.json["event"] for r in receiver.records if r.json["data"] and key_id in json.dumps(r.json["data"])]
    assert events == ["send.message", "messages.update", "messages.update", "messages.update"]
    assert receiver.evolution("send.message")[0]["data"] == answer


def test_evolution_send_to_number_not_on_whatsapp_answers_400_exists_false(sim, receiver):
    connected_instance(sim, receiver)

    response = evo_send_text(sim, number="5511900000000")

    assert response.status_code == 400
    assert response.json() == {
        "status": 400,
        "error": "Bad Request",
        "response": {"message": [{"jid": "5511900000000@s.whatsapp.net", "exists": False, "number": "5511900000000"}]},
    }


def test_evolution_send_on_closed_instance_answers_400(sim, receiver):
    requests.post(f"{sim.url}/instance/create", json={"instanceName": "closed"}, headers=EVO_KEY, timeout=5)

    response = evo_send_text(sim, name="closed")

    assert response.status_code == 400 and response.json()["error"] == "Bad Request"


def test_evolution_send_media_stores_bytes_for_get_base64(sim, receiver):
    connected_instance(sim, receiver)
    pdf = sample_pdf("boleto")
    body = {
        "number": "5514999999999",
        "mediatype": "document",
        "media": base64.b64encode(pdf).decode(),
        "fileName": "boleto.pdf",
        "caption": "Segue",
    }

    sent = requests.post(f"{sim.url}/message/sendMedia/acme", json=body, headers=EVO_KEY, timeout=5).json()
    fetched = requests.post(
        f"{sim.url}/chat/getBase64FromMediaMessage/acme",
        json={"message": {"key": {"id": sent["key"]["id"]}}},
        headers=EVO_KEY,
        timeout=5,
    ).json()

    document = sent["message"]["documentMessage"]
    assert document["mimetype"] == "application/pdf" and document["fileName"] == "boleto.pdf"
    assert document["fileLength"] == {"low": len(pdf), "high": 0, "unsigned": True}
    assert base64.b64decode(fetched["base64"]) == pdf and fetched["mediaType"] == "documentMessage"


def test_evolution_find_messages_and_chats_list_sent_and_received(sim, receiver):
    connected_instance(sim, receiver)
    sent_id = evo_send_text(sim).json()["key"]["id"]
    received_id = inject(sim, instance="acme", **{"from": CUSTOMER}, text="Oi")["id"]

    found = requests.post(
        f"{sim.url}/chat/findMessages/acme",
        json={"where": {"key": {"remoteJid": "5514999999999@s.whatsapp.net"}}},
        headers=EVO_KEY,
        timeout=5,
    ).json()["messages"]
    chats = requests.post(f"{sim.url}/chat/findChats/acme", json={}, headers=EVO_KEY, timeout=5).json()

    assert found["total"] == 2 and {r["key"]["id"] for r in found["records"]} == {sent_id, received_id}
    assert [c["remoteJid"] for c in chats] == ["5514999999999@s.whatsapp.net"]
    assert chats[0]["unreadCount"] == 1


# -- Meta ----------------------------------------------------------------------------------------
def test_meta_wrong_token_answers_401_code_190(sim):
    response = requests.get(f"{sim.url}/v23.0/{PHONE_ID}", headers={"Authorization": "Bearer nope"}, timeout=5)
    missing = requests.get(f"{sim.url}/v23.0/{PHONE_ID}", timeout=5)

    assert response.status_code == 401 and missing.status_code == 401
    error = response.json()["error"]
    assert error["code"] == 190 and error["type"] == "OAuthException" and error["fbtrace_id"]
    assert error["message"] == "Invalid OAuth access token - Cannot parse access token"


def test_meta_unknown_phone_id_answers_400_code_100(sim):
    response = requests.get(f"{sim.url}/v21.0/999", headers=META_TOKEN, timeout=5)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100
    assert response.json()["error"]["message"].startswith(
        "Unsupported get request. Object with ID '999' does not exist"
    )


def test_meta_reads_phone_numbers_and_profile(sim):
    phone = requests.get(f"{sim.url}/v23.0/{PHONE_ID}?fields=display_phone_number,verified_name", headers=META_TOKEN)
    listed = requests.get(f"{sim.url}/v23.0/{WABA_ID}/phone_numbers", headers=META_TOKEN, timeout=5).json()
    profile = requests.get(f"{sim.url}/v23.0/{PHONE_ID}/whatsapp_business_profile", headers=META_TOKEN).json()

    assert set(phone.json()) == {"display_phone_number", "verified_name", "id"}
    assert [n["id"] for n in listed["data"]] == [PHONE_ID] and listed["data"][0]["quality_rating"] == "GREEN"
    assert profile["data"][0]["messaging_product"] == "whatsapp"


def test_meta_subscribed_apps_verifies_callback_and_stores_uri(sim, receiver):
    subscribe_meta(sim, receiver)

    listed = requests.get(f"{sim.url}/v23.0/{WABA_ID}/subscribed_apps", headers=META_TOKEN, timeout=5).json()
    bad = requests.post(
        f"{sim.url}/v23.0/{WABA_ID}/subscribed_apps",
        json={"override_callback_uri": f"{receiver.url}/meta", "verify_token": "wrong"},
        headers=META_TOKEN,
        timeout=5,
    )

    assert listed["data"][0]["override_callback_uri"] == f"{receiver.url}/meta"
    assert bad.status_code == 400 and bad.json()["error"]["code"] == 2200


def test_meta_send_delivers_statuses_signed_over_raw_bytes(sim, receiver):
    subscribe_meta(sim, receiver)

    response = meta_send_text(sim)

    assert response.status_code == 200
    answer = response.json()
    wamid = answer["messages"][0]["id"]
    assert wamid.startswith("wamid.") and answer["contacts"] == [{"input": CUSTOMER, "wa_id": "5514999999999"}]
    records = receiver.meta(count=3)
    for record in records:
        expected = "sha256=" + hmac.new(APP_SECRET.encode(), record.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(record.headers["x-hub-signature-256"], expected)
    statuses = [r.json["entry"][0]["changes"][0]["value"]["statuses"][0] for r in records]
    assert [s["status"] for s in statuses] == ["sent", "delivered", "read"]
    assert {s["id"] for s in statuses} == {wamid} and statuses[0]["recipient_id"] == "5514999999999"


def test_meta_webhook_body_is_escaped_like_graph_and_signed_as_sent(sim, receiver):
    subscribe_meta(sim, receiver)

    inject(sim, phoneId=PHONE_ID, text="a/b é", **{"from": CUSTOMER})

    record = receiver.meta()[0]
    assert b'"body":"a\\/b \\u00e9"' in record.body
    assert record.headers["x-hub-signature-256"] == (
        "sha256=" + hmac.new(APP_SECRET.encode(), record.body, hashlib.sha256).hexdigest()
    )
    reserialised = json.dumps(record.json).encode()
    assert (
        hmac.new(APP_SECRET.encode(), reserialised, hashlib.sha256).hexdigest()
        not in record.headers["x-hub-signature-256"]
    )


@pytest.mark.parametrize(
    ("number", "account"),
    [
        ("5531988887777", "553188887777"),  # area code 31+, subscriber 7-9: WhatsApp's pre-2016 id
        ("5531968887777", "5531968887777"),  # subscriber starting 6: the ninth digit stays
        ("5521988887777", "5521988887777"),  # area codes 11-30 keep it
        ("553133334444", "553133334444"),  # a landline
    ],
)
def test_brazilian_numbers_are_addressed_as_whatsapp_does(sim, receiver, number, account):
    connected_instance(sim, receiver)
    subscribe_meta(sim, receiver)

    assert evo_send_text(sim, number=number).json()["key"]["remoteJid"] == f"{account}@s.whatsapp.net"
    assert meta_send_text(sim, to=number).json()["contacts"] == [{"input": number, "wa_id": account}]
    inject(sim, instance="acme", kind="text", text="Oi", **{"from": f"+{number}"})
    upsert = receiver.wait_for(lambda r: r.json is not None and r.json.get("event") == "messages.upsert")[0].json
    assert upsert["data"]["key"]["remoteJid"] == f"{account}@s.whatsapp.net"


def test_customers_who_hide_their_number_are_named_by_whatsapp_ids_both_ways(sim, receiver):
    connected_instance(sim, receiver)
    subscribe_meta(sim, receiver)

    inject(sim, instance="acme", kind="text", text="Oi", hidePhone=True, **{"from": CUSTOMER})
    key = receiver.wait_for(lambda r: r.json is not None and r.json.get("event") == "messages.upsert")[0].json["data"]
    assert key["key"]["remoteJid"].endswith("@lid") and "remoteJidAlt" not in key["key"]
    inject(sim, phoneId=PHONE_ID, kind="text", text="Oi", hidePhone=True, **{"from": CUSTOMER})
    value = receiver.meta()[0].json["entry"][0]["changes"][0]["value"]
    user_id = value["messages"][0]["from_user_id"]
    assert user_id.startswith("BR.") and "from" not in value["messages"][0]
    assert value["contacts"][0]["user_id"] == user_id and "wa_id" not in value["contacts"][0]

    answer = requests.post(
        f"{sim.url}/v23.0/{PHONE_ID}/messages",
        json={"messaging_product": "whatsapp", "recipient": user_id, "type": "text", "text": {"body": "Olá"}},
        headers=META_TOKEN,
        timeout=5,
    ).json()
    assert answer["contacts"] == [{"input": user_id, "user_id": user_id}]
    values = [r.json["entry"][0]["changes"][0]["value"] for r in receiver.meta(count=4)]
    statuses = [value["statuses"][0] for value in values if "statuses" in value]
    expected = [(status, user_id) for status in ("sent", "delivered", "read")]
    assert [(s["status"], s["recipient_user_id"]) for s in statuses] == expected


def test_meta_send_text_over_4096_chars_answers_400(sim):
    response = meta_send_text(sim, body="x" * 4097)

    assert response.status_code == 400 and response.json()["error"]["code"] == 100


def test_meta_send_to_number_not_on_whatsapp_fails_asynchronously(sim, receiver):
    subscribe_meta(sim, receiver)

    assert meta_send_text(sim, to="5511900000000").status_code == 200

    status = receiver.meta()[0].json["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert status["status"] == "failed" and status["errors"][0]["code"] == 131026


def test_meta_mark_read_answers_success(sim):
    body = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.X"}

    response = requests.post(f"{sim.url}/v23.0/{PHONE_ID}/messages", json=body, headers=META_TOKEN, timeout=5)

    assert response.json() == {"success": True}


def test_meta_media_upload_then_url_then_download(sim):
    png = sample_png()
    files = {"file": ("photo.png", png, "image/png")}
    data = {"messaging_product": "whatsapp", "type": "image/png"}

    uploaded = requests.post(f"{sim.url}/v23.0/{PHONE_ID}/media", files=files, data=data, headers=META_TOKEN)
    media_id = uploaded.json()["id"]
    info = requests.get(f"{sim.url}/v23.0/{media_id}", headers=META_TOKEN, timeout=5).json()
    download = requests.get(info["url"], headers=META_TOKEN, timeout=5)
    anonymous = requests.get(info["url"], timeout=5)

    assert info["url"].startswith(f"{sim.url}/media/{media_id}?")
    assert info["mime_type"] == "image/png" and info["file_size"] == str(len(png))
    assert info["sha256"] == hashlib.sha256(png).hexdigest() and info["messaging_product"] == "whatsapp"
    assert download.content == png and download.headers["Content-Type"] == "image/png"
    assert anonymous.status_code == 401


def test_meta_control_api_adds_a_number(sim):
    number = {
        "phone_id": "111",
        "waba_id": "222",
        "access_token": "other-token",
        "display_phone_number": "+55 11 3000-0000",
        "app_secret": "s2",
    }

    assert requests.post(f"{sim.url}/_sim/meta/numbers", json=number, timeout=5).status_code == 201
    own = requests.get(f"{sim.url}/v23.0/111", headers={"Authorization": "Bearer other-token"}, timeout=5)
    foreign = requests.get(f"{sim.url}/v23.0/{PHONE_ID}", headers={"Authorization": "Bearer other-token"})

    assert own.json()["display_phone_number"] == "+55 11 3000-0000"
    assert foreign.status_code == 400


# -- inbound injection -----------------------------------------------------------------------------
EVOLUTION_TYPES = {
    "text": "conversation",
    "image": "imageMessage",
    "video": "videoMessage",
    "audio": "audioMessage",
    "voice": "audioMessage",
    "document": "documentMessage",
    "location": "locationMessage",
    "reaction": "reactionMessage",
    "sticker": "stickerMessage",
    "contact": "contactMessage",
}


@pytest.mark.parametrize("kind", list(EVOLUTION_TYPES))
def test_inbound_evolution_every_kind_is_shaped_like_messages_upsert(sim, receiver, kind):
    connected_instance(sim, receiver)
    ours = evo_send_text(sim).json()["key"]["id"]

    injected = inject(
        sim, instance="acme", kind=kind, text="Oi" if kind != "reaction" else "❤️", reactTo=ours, **{"from": CUSTOMER}
    )

    upsert = receiver.wait_for(lambda r: r.json["event"] == "messages.upsert")[0].json
    data = upsert["data"]
    assert upsert["instance"] == "acme" and upsert["sender"].endswith("@s.whatsapp.net")
    assert data["key"]["id"] == injected["id"] and data["key"]["fromMe"] is False
    assert data["key"]["remoteJid"] == "5514999999999@s.whatsapp.net" and data["key"]["remoteJidAlt"].endswith("@lid")
    assert data["status"] == "DELIVERY_ACK" and isinstance(data["messageTimestamp"], int)
    assert data["messageType"] == EVOLUTION_TYPES[kind]
    content = data["message"][data["messageType"]]
    if kind == "text":
        assert content == "Oi"
    elif kind == "location":
        assert isinstance(content["degreesLatitude"], float)
    elif kind == "reaction":
        assert content["key"]["id"] == ours and content["key"]["fromMe"] is True and content["text"] == "❤️"
        assert set(content["senderTimestampMs"]) == {"low", "high", "unsigned"}
    elif kind == "contact":
        assert content["vcard"].startswith("BEGIN:VCARD")
    else:
        assert content["url"].startswith("https://mmg.whatsapp.net/") and content["mimetype"]
        assert set(content["fileLength"]) == {"low", "high", "unsigned"}
        media = requests.post(
            f"{sim.url}/chat/getBase64FromMediaMessage/acme",
            json={"message": {"key": {"id": injected["id"]}}},
            headers=EVO_KEY,
            timeout=5,
        ).json()
        raw = base64.b64decode(media["base64"])
        assert len(raw) == content["fileLength"]["low"]
        assert index_to_bytes(content["fileSha256"]) == hashlib.sha256(raw).digest()
        if kind in {"audio", "voice"}:
            assert content["ptt"] is (kind == "voice") and raw.startswith(b"OggS")
        if kind == "document":
            assert content["fileName"] and raw.startswith(b"%PDF")


def test_inbound_evolution_group_has_lid_participant_and_phone_alt(sim, receiver):
    connected_instance(sim, receiver)

    inject(sim, instance="acme", group=True, text="Oi grupo", **{"from": CUSTOMER})

    key = receiver.evolution("messages.upsert")[0]["data"]["key"]
    assert key["remoteJid"].endswith("@g.us")
    assert key["participant"].endswith("@lid") and key["participantAlt"] == "5514999999999@s.whatsapp.net"


def test_inbound_evolution_needs_a_connected_instance(sim, receiver):
    create_instance(sim, receiver)

    response = requests.post(f"{sim.url}/_sim/inbound", json={"instance": "acme", "from": CUSTOMER}, timeout=5)

    assert response.status_code == 409


META_TYPES = {
    "text": "text",
    "image": "image",
    "video": "video",
    "audio": "audio",
    "voice": "audio",
    "document": "document",
    "location": "location",
    "reaction": "reaction",
    "sticker": "sticker",
    "contact": "contacts",
}


@pytest.mark.parametrize("kind", list(META_TYPES))
def test_inbound_meta_every_kind_is_shaped_like_a_messages_webhook(sim, receiver, kind):
    subscribe_meta(sim, receiver)

    injected = inject(sim, phoneId=PHONE_ID, kind=kind, text="Oi", reactTo="wamid.ours", **{"from": CUSTOMER})

    record = receiver.meta()[0]
    assert record.headers["x-hub-signature-256"] == (
        "sha256=" + hmac.new(APP_SECRET.encode(), record.body, hashlib.sha256).hexdigest()
    )
    body = record.json
    assert body["object"] == "whatsapp_business_account" and body["entry"][0]["id"] == WABA_ID
    value = body["entry"][0]["changes"][0]["value"]
    assert value["metadata"]["phone_number_id"] == PHONE_ID
    assert value["contacts"][0]["wa_id"] == "5514999999999"
    message = value["messages"][0]
    assert message["id"] == injected["id"] and message["from"] == "5514999999999"
    assert message["type"] == META_TYPES[kind] and isinstance(message["timestamp"], str)
    content = message[META_TYPES[kind]]
    if kind == "text":
        assert content == {"body": "Oi"}
    elif kind == "location":
        assert isinstance(content["latitude"], float)
    elif kind == "reaction":
        assert content == {"message_id": "wamid.ours", "emoji": "Oi"}
    elif kind == "contact":
        assert content[0]["phones"][0]["wa_id"]
    else:
        info = requests.get(f"{sim.url}/v23.0/{content['id']}", headers=META_TOKEN, timeout=5).json()
        raw = requests.get(info["url"], headers=META_TOKEN, timeout=5).content
        assert content["sha256"] == base64.b64encode(hashlib.sha256(raw).digest()).decode()
        assert content["mime_type"] == info["mime_type"]
        if kind in {"audio", "voice"}:
            assert content["voice"] is (kind == "voice")
        if kind == "document":
            assert content["filename"]


# -- faults --------------------------------------------------------------------------------------
def set_faults(sim, **values):
    response = requests.post(f"{sim.url}/_sim/faults", json=values, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def test_faults_rate_limit_burst_then_ok(sim, receiver):
    create_instance(sim, receiver)
    set_faults(sim, rate_limit_burst=2)
    url = f"{sim.url}/instance/connectionState/acme"

    first = requests.get(url, headers=EVO_KEY, timeout=5)
    second = requests.get(f"{sim.url}/v23.0/{PHONE_ID}", headers=META_TOKEN, timeout=5)
    third = requests.get(url, headers=EVO_KEY, timeout=5)

    assert first.status_code == 429 and first.headers["Retry-After"] == "1"
    assert first.json()["status"] == 429
    assert second.status_code == 429 and second.json()["error"]["code"] == 130429
    assert third.status_code == 200


def test_faults_error_rate_one_answers_500_but_not_on_control_api(sim):
    set_faults(sim, error_rate=1.0)

    evolution = requests.get(f"{sim.url}/instance/fetchInstances", headers=EVO_KEY, timeout=5)
    meta = requests.get(f"{sim.url}/v23.0/{PHONE_ID}", headers=META_TOKEN, timeout=5)

    assert evolution.status_code == 500 and evolution.json()["error"] == "Internal Server Error"
    assert meta.status_code == 500 and meta.json()["error"]["code"] == 131000
    assert requests.get(f"{sim.url}/_sim/state", timeout=5).status_code == 200


def test_faults_duplicate_webhooks_are_delivered_twice(sim, receiver):
    connected_instance(sim, receiver)
    set_faults(sim, duplicate_webhooks=1.0)

    key_id = evo_send_text(sim).json()["key"]["id"]

    sent = receiver.evolution("send.message", count=2)
    assert len(sent) == 2 and sent[0] == sent[1] and sent[0]["data"]["key"]["id"] == key_id
    sim.wait_for_webhooks()
    duplicates = [d for d in sim.state.deliveries if d["duplicate"] and d["event"] == "send.message"]
    assert len(duplicates) == 1


def test_faults_out_of_order_delivers_read_before_sent(sim, receiver):
    subscribe_meta(sim, receiver)
    connected_instance(sim, receiver)
    set_faults(sim, out_of_order=True)

    meta_send_text(sim)
    key_id = evo_send_text(sim).json()["key"]["id"]

    meta_statuses = [r.json["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] for r in receiver.meta(3)]
    assert meta_statuses == ["read", "delivered", "sent"]
    receiver.evolution("send.message")
    evo_events = [
        r.json["data"]["status"] if r.json["event"] == "messages.update" else r.json["event"]
        for r in receiver.records
        if r.path == "/evolution" and key_id in json.dumps(r.json["data"])
    ]
    assert evo_events == ["READ", "DELIVERY_ACK", "SERVER_ACK", "send.message"]


def test_faults_latency_is_measurable(sim):
    set_faults(sim, latency_ms=300)

    started = time.monotonic()
    requests.get(f"{sim.url}/v23.0/{PHONE_ID}", headers=META_TOKEN, timeout=5)
    provider_elapsed = time.monotonic() - started
    started = time.monotonic()
    requests.get(f"{sim.url}/_sim/faults", timeout=5)
    control_elapsed = time.monotonic() - started

    assert provider_elapsed >= 0.3 and control_elapsed < 0.3


def test_faults_timeout_holds_the_answer_but_the_send_happens(sim, receiver):
    subscribe_meta(sim, receiver)
    set_faults(sim, timeout_rate=1.0, timeout_seconds=1.0)

    with pytest.raises(requests.ReadTimeout):
        requests.post(
            f"{sim.url}/v23.0/{PHONE_ID}/messages",
            json={"messaging_product": "whatsapp", "to": CUSTOMER, "type": "text", "text": {"body": "?"}},
            headers=META_TOKEN,
            timeout=0.3,
        )

    assert [m["to"] for m in sim.state.sent] == ["5514999999999"]
    assert receiver.meta(3)


# -- delivery, control API, CLI --------------------------------------------------------------------
def test_webhooks_retry_after_5xx_and_log_attempts(sim, receiver):
    receiver.answers = [503]
    create_instance(sim, receiver)

    receiver.evolution("instance.create", count=2)
    sim.wait_for_webhooks()

    entry = next(d for d in sim.state.deliveries if d["event"] == "instance.create")
    assert entry["attempts"] == 2 and entry["result"] == "delivered" and entry["httpStatus"] == 200
    logged = requests.get(f"{sim.url}/_sim/state", timeout=5).json()["deliveries"]
    assert logged and "body" not in logged[0]


def test_control_reset_clears_everything_but_the_default_number(sim, receiver):
    create_instance(sim, receiver)
    set_faults(sim, latency_ms=5)

    requests.post(f"{sim.url}/_sim/reset", timeout=5)
    state = requests.get(f"{sim.url}/_sim/state", timeout=5).json()

    assert state["instances"] == [] and state["faults"]["latency_ms"] == 0
    assert [n["phone_id"] for n in state["metaNumbers"]] == [PHONE_ID]


def test_command_say_injects_a_message_through_a_running_simulator(sim, receiver):
    connected_instance(sim, receiver)
    out = StringIO()

    call_command(
        "simulate_provider", "say", "--url", sim.url, "--instance", "acme", "--from", CUSTOMER, "Oi", stdout=out
    )

    injected = json.loads(out.getvalue())
    upsert = receiver.evolution("messages.upsert")[0]["data"]
    assert upsert["key"]["id"] == injected["id"] and upsert["message"]["conversation"] == "Oi"


def test_command_say_meta_scan_faults_and_state(sim, receiver):
    subscribe_meta(sim, receiver)
    create_instance(sim, receiver)

    call_command(
        "simulate_provider", "say", "--url", sim.url, "--meta", "--from", CUSTOMER, "--kind", "image", stdout=StringIO()
    )
    call_command("simulate_provider", "scan", "--url", sim.url, "--instance", "acme", stdout=StringIO())
    faults = StringIO()
    call_command(
        "simulate_provider", "faults", "--url", sim.url, "--latency-ms", "5", "--out-of-order", "true", stdout=faults
    )
    state = StringIO()
    call_command("simulate_provider", "state", "--url", sim.url, stdout=state)

    assert receiver.meta()[0].json["entry"][0]["changes"][0]["value"]["messages"][0]["type"] == "image"
    assert json.loads(faults.getvalue())["latency_ms"] == 5 and json.loads(faults.getvalue())["out_of_order"] is True
    assert json.loads(state.getvalue())["instances"][0]["status"] == "open"


@pytest.mark.slow
def test_command_serves_until_sigterm():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "elsehub.settings.test", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "simulate_provider", "--port", "0"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = process.stdout.readline()
        assert first.startswith("Provider simulator listening on http://127.0.0.1:"), first + process.stderr.read()
        url = first.rsplit(" ", 1)[1].strip()
        assert requests.get(f"{url}/_sim/health", timeout=5).json() == {"ok": True}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_media_samples_are_valid_files():
    ogg = sample_ogg()
    assert ogg.startswith(b"OggS") and b"OpusHead" in ogg
    pdf = sample_pdf()
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
    xref = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert pdf[xref:].startswith(b"xref")

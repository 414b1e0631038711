"""`chart serve` as its callers see it: a real server on loopback, real HTTP clients (requests, raw
sockets), real signed JWTs (PyJWT + cryptography), FHIR R4 RiskAssessments checked by fhir.resources.

  python tests/check_serve.py CHART WORKDIR CHECKPOINT MEDS PREDICTIONS [PRETRAINED ZERO_SHOT_PREDICTIONS]
  python tests/check_serve.py bench CHART WORKDIR CHECKPOINT MEDS PREDICTIONS   (docs/perf.md's table;
      CHART_SERVE_TASK names the checkpoint's task, default mortality_365d)

CHECKPOINT is a fine-tuned checkpoint of task mortality_365d on the MEDS dataset MEDS;
PREDICTIONS is `chart predict`'s predictions.parquet for that task's held_out label rows: every
answer of the service must equal it. PRETRAINED and ZERO_SHOT_PREDICTIONS (optional): the
pretraining checkpoint and `chart predict`'s zero-shot predictions from it (MEDS_DEATH within 365d,
generate.samples=8): the zero-shot task must answer the same, with its interval. Exits non-zero,
naming the check, on the first failure.
"""
import concurrent.futures as cf
import datetime as dt
import glob
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

try:
    import jwt
    import pyarrow.parquet as pq
    import requests
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID
    from fhir.resources.R4B.riskassessment import RiskAssessment
except ImportError as e:  # the ctest skips (77): scripts/requirements.txt has them
    print(f"skipped: {e} (pip install -r scripts/requirements.txt)")
    sys.exit(77)

BENCH = len(sys.argv) > 1 and sys.argv[1] == "bench"
CHART, WORK, CKPT, MEDS, PREDICTIONS = sys.argv[2:7] if BENCH else sys.argv[1:6]
PRETRAINED, ZS_PREDICTIONS = (sys.argv[6:8] if not BENCH and len(sys.argv) >= 8 else (None, None))
ZS_TASK, ZS_SETS = "death_365d", ["serve.zero_shot=[death_365d=MEDS_DEATH@365d]", "generate.samples=8"]
TASK = os.environ.get("CHART_SERVE_TASK", "mortality_365d")
DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "examples")
AUDIENCE = "https://chart.test/serve"
API_KEY = "key-notebook-0123456789"
LIMITED_KEY = "key-limited-0123456789"
OTHER_KEY = "key-other-task-0123456789"


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", flush=True)
        sys.exit(1)
    print(f"ok: {what}", flush=True)


def pem_private(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def pem_public(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def write_clients(ec_key, rsa_key):
    os.makedirs(f"{WORK}/keys", exist_ok=True)
    open(f"{WORK}/keys/ehr.pem", "w").write(pem_public(ec_key))
    open(f"{WORK}/keys/portal.pem", "w").write(pem_public(rsa_key))
    clients = f"""clients:
  - id: notebook
    tasks: ["*"]
    api_key_sha256: {sha(API_KEY)}
    admin: true
    rate_limit: 0
  - id: site-b-ehr
    tasks: [{TASK}]
    jwt_issuer: https://ehr.site-b.test
    jwt_public_key: keys/ehr.pem
  - id: portal
    tasks: [{TASK}]
    jwt_issuer: https://portal.test
    jwt_public_key: keys/portal.pem
  - id: limited
    tasks: [{TASK}]
    api_key_sha256: {sha(LIMITED_KEY)}
    rate_limit: 3
  - id: other
    tasks: [readmission_30d]
    api_key_sha256: {sha(OTHER_KEY)}
"""
    open(f"{WORK}/clients.yaml", "w").write(clients)


def start_server(run_dir, *sets, models=None):
    args = [CHART, "serve", os.path.join(os.path.dirname(__file__), "..", "configs", "serve.yaml"),
            "--set", f"serve.models=[{models or f'{TASK}={CKPT}'}]", "--set", f"serve.clients={WORK}/clients.yaml",
            "--set", f"serve.audience={AUDIENCE}", "--set", f"serve.fhir_mapping={DOCS}/fhir_mapping.yaml",
            "--set", f"run.dir={run_dir}", "--set", "serve.port=0", "--set", "train.threads=2",
            "--set", "serve.max_body_kb=256", "--set", "serve.read_timeout_s=1", "--set", "serve.batch_wait_ms=5"]
    for s in sets:
        args += ["--set", s]
    log = open(f"{run_dir}.log", "w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    state = f"{run_dir}/serve.json"
    for _ in range(600):
        if os.path.exists(state):
            return proc, json.load(open(state))["url"]
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    print(open(f"{run_dir}.log").read())
    check(False, f"chart serve started ({run_dir})")


def token(key, alg, iss, aud=AUDIENCE, exp_in=300):
    now = int(time.time())
    return jwt.encode({"iss": iss, "sub": iss, "aud": aud, "exp": now + exp_in, "iat": now, "jti": os.urandom(8).hex()},
                      key, algorithm=alg)


def bearer(t):
    return {"Authorization": f"Bearer {t}"}


def iso(ts):
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def load_cases(predictions=None):
    """(subject_id, prediction_time) -> (MEDS rows as the API takes them, chart predict's probability)."""
    rows = {}
    for f in sorted(glob.glob(f"{MEDS}/data/**/*.parquet", recursive=True)):
        for r in pq.read_table(f, columns=["subject_id", "time", "code", "numeric_value"]).to_pylist():
            e = {"code": r["code"]}
            if r["time"] is not None:
                e["time"] = iso(r["time"])
            if r["numeric_value"] is not None:
                e["numeric_value"] = r["numeric_value"]
            rows.setdefault(r["subject_id"], []).append(e)
    preds = pq.read_table(predictions or PREDICTIONS).to_pylist()
    return [({"subject_id": p["subject_id"], "prediction_time": iso(p["prediction_time"]), "events": rows[p["subject_id"]]},
             p["predicted_boolean_probability"]) for p in preds]


def post(url, body, headers, path="/v1/predict"):
    return requests.post(url + path, data=json.dumps(body), headers={**headers, "Content-Type": "application/json"},
                         timeout=60)


def check_auth(url, ec_key, rsa_key, body):
    api = bearer(API_KEY)
    r = post(url, body, {})
    check(r.status_code == 401 and r.json()["error"]["code"] == "missing_credentials", "no credentials: 401")
    check(post(url, body, bearer("not-a-key")).status_code == 401, "an unknown API key: 401")
    ok = post(url, body, bearer(token(ec_key, "ES384", "https://ehr.site-b.test")))
    check(ok.status_code == 200, f"an ES384 JWT of a configured issuer: 200 ({ok.status_code} {ok.text[:200]})")
    ok = post(url, body, bearer(token(rsa_key, "RS384", "https://portal.test")))
    check(ok.status_code == 200, "an RS384 JWT of a configured issuer: 200")
    cases = {
        "expired_token": token(ec_key, "ES384", "https://ehr.site-b.test", exp_in=-600),
        "wrong_audience": token(ec_key, "ES384", "https://ehr.site-b.test", aud="https://elsewhere.test"),
        "bad_signature": token(ec.generate_private_key(ec.SECP384R1()), "ES384", "https://ehr.site-b.test"),
        "unknown_issuer": token(ec_key, "ES384", "https://stranger.test"),
        # The public key used as an HMAC secret: the classic algorithm confusion.
        "bad_algorithm": jwt.encode({"iss": "https://ehr.site-b.test", "aud": AUDIENCE, "exp": int(time.time()) + 300},
                                    "x" * 64, algorithm="HS384"),
    }
    pub = pem_public(ec_key).encode()
    head = jwt.utils.base64url_encode(json.dumps({"alg": "HS384", "typ": "JWT"}).encode())
    claims = jwt.utils.base64url_encode(json.dumps({"iss": "https://ehr.site-b.test", "aud": AUDIENCE,
                                                    "exp": int(time.time()) + 300}).encode())
    sig = jwt.utils.base64url_encode(hmac.new(pub, head + b"." + claims, hashlib.sha384).digest())
    cases["bad_algorithm_pubkey_hmac"] = (head + b"." + claims + b"." + sig).decode()
    unsigned = jwt.encode({"iss": "https://ehr.site-b.test", "aud": AUDIENCE, "exp": int(time.time()) + 300}, None,
                          algorithm="none")
    cases["alg_none"] = unsigned
    for name, t in cases.items():
        r = post(url, body, bearer(t))
        check(r.status_code == 401 and "error" in r.json(), f"{name}: 401 ({r.status_code} {r.text[:120]})")
    r = post(url, body, bearer(OTHER_KEY))
    check(r.status_code == 403 and r.json()["error"]["code"] == "forbidden_task", "a client without the task: 403")
    r = post(url, {**body, "tasks": ["no_such_task"]}, api)
    check(r.status_code == 404 and r.json()["error"]["code"] == "unknown_task", "an unknown task: 404")
    r = post(url, {**body, "tasks": ["no_such_task"]}, bearer(token(ec_key, "ES384", "https://ehr.site-b.test")))
    check(r.status_code == 403, "an unknown task asked by a client limited to others: 403 (nothing learnt)")
    codes = [post(url, body, bearer(LIMITED_KEY)).status_code for _ in range(5)]
    check(codes[:3] == [200] * 3 and codes[3:] == [429, 429], f"a client over its rate limit: 429 ({codes})")


def check_bad_input(url, body):
    api = bearer(API_KEY)
    r = requests.post(url + "/v1/predict", data="{not json", headers={**api, "Content-Type": "application/json"})
    check(r.status_code == 400 and r.json()["error"]["code"] == "malformed_json" and "not json" not in r.text,
          "malformed JSON: 400, the body not echoed")
    r = post(url, {**body, "prediction_time": 5}, api)
    check(r.status_code == 400 and "prediction_time" in r.json()["error"]["message"], "a number for a time: 400 naming it")
    bad_rows = {**body, "events": body["events"][:3] + [{"code": 7}]}
    r = post(url, bad_rows, api)
    check(r.status_code == 400 and "events[3].code" in r.json()["error"]["message"], "a bad row: 400 naming the row")
    r = post(url, {**body, "events": [{"code": "LAB//x", "time": "2020-02-30"}]}, api)
    check(r.status_code == 400 and "events[0].time" in r.json()["error"]["message"], "an impossible date: 400")
    r = requests.post(url + "/v1/predict", data=json.dumps(body), headers={**api, "Content-Type": "text/plain"})
    check(r.status_code == 415, "another content type: 415")
    big = {**body, "events": body["events"] * 2000}
    r = requests.post(url + "/v1/predict", data=json.dumps(big), headers={**api, "Content-Type": "application/json"})
    check(r.status_code == 413 and r.json()["error"]["code"] == "body_too_large", f"an oversized body: 413 JSON ({r.status_code})")
    unknown = {**body, "events": [{"code": "MEDS_BIRTH", "time": "1950-01-01"}] +
               [{"code": f"LOCAL//NEVER_SEEN_{i}", "time": "2019-01-01T00:00:00Z"} for i in range(10)]}
    r = post(url, unknown, api)
    p = r.json()["predictions"][0] if r.status_code == 200 else {}
    check(r.status_code == 200 and p["coverage"]["unknown_codes"] == 10 and any("coverage" in w for w in p["warnings"]),
          "unknown codes: answered, counted and warned about")
    r = post(url, {**body, "prediction_time": "1900-01-01T00:00:00Z"}, api)
    check(r.status_code == 422, "a prediction time before the record: 422")
    # A slow client: headers, then part of the body, then silence past serve.read_timeout_s.
    s = socket.create_connection((url.split("//")[1].split(":")[0], int(url.rsplit(":", 1)[1])))
    s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + API_KEY.encode() +
              b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"subject_id\"")
    s.settimeout(10)
    t0 = time.time()
    try:
        answer = s.recv(4096)  # the answer, or the end of the connection
    except socket.timeout:
        answer = b"(nothing)"
    waited = time.time() - t0
    s.close()
    status = answer.split(b"\r\n")[0]
    check(waited < 4 and (answer == b"" or b" 400 " in status or b" 408 " in status),
          f"a slow client is cut off after the read timeout ({waited:.1f} s, {status!r})")
    check(requests.get(url + "/healthz").status_code == 200, "and the server keeps serving")


def check_fhir(url, cases):
    api = bearer(API_KEY)
    body, _ = cases[0]
    r = post(url, body, api)
    check(r.status_code == 200, "predict: 200")
    later = max((sum(1 for e in b["events"] if "time" in e and e["time"] > b["prediction_time"]), i)
                for i, (b, _) in enumerate(cases))
    lr = post(url, cases[later[1]][0], api).json()["predictions"][0]
    check(later[0] > 0 and lr["coverage"]["after_prediction_time"] == later[0] and
          any("after prediction_time" in w for w in lr["warnings"]),
          f"rows after prediction_time are not read, and counted ({later[0]})")
    for ra in r.json()["risk_assessments"]:
        RiskAssessment.model_validate(ra)
    check(True, "the RiskAssessment validates against FHIR R4B (fhir.resources)")
    ra = r.json()["risk_assessments"][0]
    check(ra["prediction"][0]["probabilityDecimal"] == r.json()["predictions"][0]["probability"] and
          ra["method"]["coding"][0]["version"] == r.json()["predictions"][0]["model"]["version"],
          "RiskAssessment and the plain answer agree")
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1960-03-01"}},
        {"resource": {"resourceType": "Condition", "id": "c1", "onsetDateTime": "2018-04-01T10:00:00Z",
                      "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I10"}]}}},
        {"resource": {"resourceType": "Observation", "id": "o1", "effectiveDateTime": "2018-04-01T10:30:00Z",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
                      "valueQuantity": {"value": 180, "unit": "mg/dL"}}},
        {"resource": {"resourceType": "Encounter", "id": "e1", "period": {"start": "2018-04-01T09:00:00Z"},
                      "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}}},
        {"resource": {"resourceType": "AllergyIntolerance", "id": "a1"}},
    ]}
    meds_rows = [{"code": "GENDER//F"}, {"code": "MEDS_BIRTH", "time": "1960-03-01"},
                 {"code": "VISIT//OUTPATIENT", "time": "2018-04-01T09:00:00Z"},
                 {"code": "DIAGNOSIS//ICD//10//I10", "time": "2018-04-01T10:00:00Z"},
                 {"code": "LAB//glucose//mg/dL", "time": "2018-04-01T10:30:00Z", "numeric_value": 180}]
    pt = "2019-01-01T00:00:00Z"
    a = post(url, {"prediction_time": pt, "fhir": bundle}, api)
    b = post(url, {"subject_id": "p1", "prediction_time": pt, "events": meds_rows}, api)
    check(a.status_code == 200 and a.json()["unmapped_resources"] == 1 and a.json()["subject_id"] == "p1",
          f"a FHIR Bundle: mapped, the unmapped resource counted ({a.text[:300]})")
    check(abs(a.json()["predictions"][0]["probability"] - b.json()["predictions"][0]["probability"]) < 1e-9 and
          a.json()["predictions"][0]["coverage"]["events"] == 5 and a.json()["predictions"][0]["coverage"]["unknown_codes"] == 0,
          "the Bundle predicts what the same MEDS rows predict")
    return bundle


def check_cds(url, ec_key, bundle):
    auth = lambda: bearer(token(ec_key, "ES384", "https://ehr.site-b.test"))
    d = requests.get(url + "/cds-services", headers=auth()).json()
    ids = {s["id"]: s for s in d["services"]}
    check(set(ids) == {TASK, f"{TASK}-order-select"} and ids[TASK]["hook"] == "patient-view" and
          ids[f"{TASK}-order-select"]["hook"] == "order-select" and "patient" in ids[TASK]["prefetch"],
          "discovery: a patient-view and an order-select service per task, with prefetch templates")
    prefetch = {"patient": bundle["entry"][0]["resource"],
                "conditions": {"resourceType": "Bundle", "type": "searchset", "entry": bundle["entry"][1:2]},
                "observations": {"resourceType": "Bundle", "type": "searchset", "entry": bundle["entry"][2:3]}}
    req = {"hook": "patient-view", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
           "context": {"userId": "Practitioner/1", "patientId": "p1"}, "prefetch": prefetch}
    r = post(url, req, auth(), f"/cds-services/{TASK}")
    cards = r.json().get("cards", []) if r.status_code == 200 else []
    check(len(cards) == 1 and TASK in cards[0]["summary"] and len(cards[0]["summary"]) <= 140 and
          cards[0]["source"]["url"].endswith(f"/v1/model-card/{TASK}") and cards[0]["indicator"] in ("info", "warning"),
          f"patient-view: one card with the risk, the model and its card ({r.text[:300]})")
    r = post(url, {**req, "hook": "order-select", "context": {**req["context"], "selections": [], "draftOrders": {}}},
             auth(), f"/cds-services/{TASK}-order-select")
    check(r.status_code == 200 and "draft orders" in r.json()["cards"][0]["detail"], "order-select: a card")
    r = post(url, {**req, "hook": "order-select"}, auth(), f"/cds-services/{TASK}")
    check(r.status_code == 400, "the wrong hook for a service: 400")
    r = post(url, {k: v for k, v in req.items() if k != "prefetch"}, auth(), f"/cds-services/{TASK}")
    check(r.status_code == 412, "no prefetch: 412")
    fb = {"feedback": [{"card": cards[0]["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-12-01T10:00:00Z",
                        "overrideReason": {"reason": {"code": "not-relevant", "system": "https://chart.test"}}}]}
    r = post(url, fb, auth(), f"/cds-services/{TASK}/feedback")
    check(r.status_code == 200, "feedback: 200")
    r = post(url, {"feedback": [{"card": "x", "outcome": "maybe"}]}, auth(), f"/cds-services/{TASK}/feedback")
    check(r.status_code == 400, "bad feedback: 400")
    # docs/serve.md's curl examples, as they are.
    r = post(url, json.load(open(f"{DOCS}/predict.json")), bearer(API_KEY))
    check(r.status_code == 200 and r.json()["predictions"][0]["coverage"]["unknown_codes"] == 0,
          f"docs/examples/predict.json: answered, every code known ({r.text[:200]})")
    r = post(url, json.load(open(f"{DOCS}/patient-view.json")), bearer(API_KEY), f"/cds-services/{TASK}")
    check(r.status_code == 200 and "0 FHIR resources" not in r.text and "Read 4 events; 100.0%" in r.json()["cards"][0]["detail"],
          f"docs/examples/patient-view.json: a card, every resource mapped ({r.text[:400]})")
    card = requests.get(url + f"/v1/model-card/{TASK}", headers=auth())
    check(card.status_code == 200 and isinstance(card.json(), dict) and card.json(), "the model card")


def check_zero_shot(cases):
    """A pretrained checkpoint served zero-shot beside the fine-tuned one: chart predict's answers, with intervals."""
    bad = subprocess.run([CHART, "serve", os.path.join(os.path.dirname(__file__), "..", "configs", "serve.yaml"),
                          "--set", f"serve.models=[{ZS_TASK}={PRETRAINED}]", "--set", f"serve.clients={WORK}/clients.yaml",
                          "--set", f"serve.audience={AUDIENCE}", "--set", f"run.dir={WORK}/serve-zs-refused",
                          "--set", "serve.port=0"],
                         capture_output=True, text=True)
    check(bad.returncode != 0 and "serve.zero_shot" in bad.stderr and PRETRAINED.rstrip("/") in bad.stderr,
          f"a pretrained checkpoint without serve.zero_shot is refused, naming it ({bad.stderr.strip()[-200:]})")
    run_dir = f"{WORK}/serve-zs"
    proc, url = start_server(run_dir, *ZS_SETS, models=f"{TASK}={CKPT}, {ZS_TASK}={PRETRAINED}")
    api = bearer(API_KEY)
    body, want = cases[0]
    r = post(url, body, api)
    got = {p["task"]: p for p in r.json()["predictions"]} if r.status_code == 200 else {}
    zs = got.get(ZS_TASK, {})
    check(set(got) == {TASK, ZS_TASK} and got[TASK]["interval"] is None and zs.get("method") == "zero-shot" and
          zs["samples"] == 8 and zs["outcome_codes"] == ["MEDS_DEATH"] and
          0 <= zs["interval"]["low"] <= zs["probability"] <= zs["interval"]["high"] <= 1,
          f"predict answers both tasks; the zero-shot one with its interval ({r.text[:300]})")
    check(abs(zs["probability"] - want) < 2e-5, f"the zero-shot answer equals chart predict's ({zs['probability']} vs {want})")
    for ra in r.json()["risk_assessments"]:
        RiskAssessment.model_validate(ra)
    ra = next(a for a in r.json()["risk_assessments"] if a["method"]["coding"][0]["code"] == ZS_TASK)
    check("zero-shot" in ra["method"]["text"] and "95% interval" in ra["note"][0]["text"] and
          ra["prediction"][0]["whenPeriod"]["end"] > ra["prediction"][0]["whenPeriod"]["start"],
          "the zero-shot RiskAssessment validates, names its method, interval and horizon")
    d = requests.get(url + "/cds-services", headers=api).json()
    check(any(s["id"] == ZS_TASK and "zero-shot" in s["description"] for s in d["services"]),
          "discovery lists the zero-shot service")
    # Batched together in any mix, each request draws its own futures: every answer is chart predict's.
    check_load(url, cases, 16, "zero-shot at 16 clients", task=ZS_TASK)
    proc.send_signal(signal.SIGTERM)
    check(proc.wait(timeout=60) == 0, "the zero-shot server exits 0 on SIGTERM")


def check_load(url, cases, clients, label, task=None):
    """A fixed number of requests from `clients` concurrent clients; every answer the batch command's."""
    api = bearer(API_KEY)
    session = threading.local()

    def one(case):
        s = getattr(session, "s", None) or requests.Session()
        session.s = s
        body, want = case
        t0 = time.perf_counter()
        r = s.post(url + "/v1/predict", data=json.dumps(body), headers={**api, "Content-Type": "application/json"},
                   timeout=120)
        p = None
        if r.status_code == 200:
            p = next(x["probability"] for x in r.json()["predictions"] if task is None or x["task"] == task)
        return r.status_code, p, want, time.perf_counter() - t0

    n = max(len(cases), (16 if BENCH else 4) * clients)
    work = (cases * (1 + n // len(cases)))[:n]
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as pool:
        out = list(pool.map(one, work))
    secs = time.perf_counter() - t0
    ok = [o for o in out if o[0] == 200]
    worst = max(abs(o[1] - o[2]) for o in ok) if ok else None
    check(len(ok) == len(work), f"{label}: {len(work)} requests from {clients} clients, none dropped")
    check(worst is not None and worst < 2e-5, f"{label}: every answer equals chart predict's (max |diff| {worst:.2e})")
    lat = sorted(o[3] for o in out)
    return {"clients": clients, "requests": len(work), "rps": len(work) / secs,
            "p50_ms": 1000 * lat[len(lat) // 2], "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))]}


def check_audit(run_dir):
    lines = [json.loads(l) for l in open(f"{run_dir}/audit.jsonl")]
    check(all({"time", "request_id", "client", "route", "status", "outcome", "latency_ms", "tasks"} <= set(l) for l in lines),
          f"the audit log: {len(lines)} JSON lines with time, client, task, request id, status, latency")
    text = open(f"{run_dir}/audit.jsonl").read()
    check("DIAGNOSIS//" not in text and "numeric_value" not in text and "payload" not in text,
          "the audit log carries no request body")
    check(any(l["route"] == "/cds-services/{id}/feedback" and l.get("extra", {}).get("feedback") for l in lines),
          "the audit log records CDS feedback")
    versions = {t["version"] for l in lines for t in l["tasks"] if t["version"]}
    check(len(versions) == 1, "the audit log names the model version")


def main():
    os.makedirs(WORK, exist_ok=True)
    ec_key = ec.generate_private_key(ec.SECP384R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write_clients(ec_key, rsa_key)
    cases = load_cases()
    check(len(cases) >= 10, f"{len(cases)} held_out prediction times from chart predict")

    # Plain HTTP refused off loopback.
    r = subprocess.run([CHART, "serve", os.path.join(os.path.dirname(__file__), "..", "configs", "serve.yaml"),
                        "--set", "serve.host=0.0.0.0", "--set", f"serve.models=[{TASK}={CKPT}]",
                        "--set", f"serve.clients={WORK}/clients.yaml", "--set", f"run.dir={WORK}/refused"],
                       capture_output=True, text=True)
    check(r.returncode != 0 and "TLS" in r.stderr, "plain HTTP on a non-loopback address is refused")

    run_dir = f"{WORK}/serve"
    proc, url = start_server(run_dir)
    check(requests.get(url + "/healthz").json() == {"status": "ok"} and requests.get(url + "/readyz").status_code == 200,
          "/healthz and /readyz answer without credentials")
    body, want = cases[0]
    check_auth(url, ec_key, rsa_key, body)
    check_bad_input(url, body)
    bundle = check_fhir(url, cases)
    check_cds(url, ec_key, bundle)
    perf = [check_load(url, cases, n, f"load at {n} clients") for n in (1, 16, 128)]
    m = requests.get(url + "/metrics", headers=bearer(API_KEY)).text
    batches = int(next(l for l in m.splitlines() if l.startswith("chart_batch_size_count")).split()[-1])
    check('chart_requests_total{route="/v1/predict",status="200"}' in m and 'chart_errors_total{code="rate_limited"}' in m
          and "chart_request_seconds_bucket" in m, "metrics in the Prometheus text format")
    predicted = sum(p["requests"] for p in perf)
    check(batches < predicted, f"concurrent requests were batched ({predicted} load requests, {batches} batches in all)")

    # Reload without dropping a request: requests keep flowing through an admin reload and a SIGHUP.
    stop = threading.Event()
    codes = []

    def keep_asking():
        s = requests.Session()
        while not stop.is_set():
            codes.append(s.post(url + "/v1/predict", data=json.dumps(body),
                                headers={**bearer(API_KEY), "Content-Type": "application/json"}).status_code)
    workers = [threading.Thread(target=keep_asking) for _ in range(4)]
    for w in workers:
        w.start()
    r = requests.post(url + "/v1/admin/reload", headers=bearer(API_KEY))
    check(r.status_code == 200 and r.json()["reloaded"][0]["task"] == TASK, "admin reload: 200")
    check(requests.post(url + "/v1/admin/reload", headers=bearer(token(ec_key, "ES384", "https://ehr.site-b.test")))
          .status_code == 403, "reload by a non-admin client: 403")
    proc.send_signal(signal.SIGHUP)
    time.sleep(3)
    stop.set()
    for w in workers:
        w.join()
    check(codes and set(codes) == {200}, f"{len(codes)} requests during two reloads, all answered 200 ({sorted(set(codes))})")
    check("reloaded" in open(f"{run_dir}.log").read(), "SIGHUP reloaded the models")
    after = post(url, body, bearer(API_KEY)).json()["predictions"][0]["probability"]
    check(abs(after - want) < 2e-5, "the reloaded model answers the same")

    # SIGTERM with requests in flight: they finish, the process exits 0.
    with cf.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(lambda c=c: post(url, c[0], bearer(API_KEY)).status_code) for c in cases[:8]]
        time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        finished = []
        for f in futures:
            try:
                finished.append(f.result())
            except requests.ConnectionError:
                finished.append("refused")
    rc = proc.wait(timeout=60)
    check(rc == 0 and not os.path.exists(f"{run_dir}/serve.json"), f"SIGTERM: drained and exited 0 (rc {rc})")
    check(all(c in (200, "refused") for c in finished) and 200 in finished,
          f"requests in flight at SIGTERM were answered ({finished})")
    check_audit(run_dir)

    # HTTPS with a certificate and key.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(dt.datetime(2020, 1, 1)).not_valid_after(dt.datetime(2099, 1, 1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    open(f"{WORK}/tls.crt", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
    open(f"{WORK}/tls.key", "w").write(pem_private(key))
    proc, url = start_server(f"{WORK}/serve-tls", f"serve.tls_cert={WORK}/tls.crt", f"serve.tls_key={WORK}/tls.key")
    url = url.replace("127.0.0.1", "localhost")
    r = requests.post(url + "/v1/predict", data=json.dumps(body), verify=f"{WORK}/tls.crt",
                      headers={**bearer(API_KEY), "Content-Type": "application/json"})
    check(url.startswith("https://") and r.status_code == 200 and abs(r.json()["predictions"][0]["probability"] - want) < 2e-5,
          "HTTPS with the configured certificate")
    proc.send_signal(signal.SIGTERM)
    check(proc.wait(timeout=60) == 0, "the HTTPS server exits 0 on SIGTERM")
    json.dump(perf, open(f"{WORK}/serve_perf.json", "w"), indent=1)
    print("serve perf:", json.dumps(perf))
    if PRETRAINED:
        check_zero_shot(load_cases(ZS_PREDICTIONS))


def bench():
    """Requests/s and latency at 1, 16 and 128 clients, batched and one request per forward pass."""
    os.makedirs(WORK, exist_ok=True)
    write_clients(ec.generate_private_key(ec.SECP384R1()), rsa.generate_private_key(public_exponent=65537, key_size=2048))
    cases = load_cases()
    rows = []
    for batch in (32, 1):
        proc, url = start_server(f"{WORK}/bench-b{batch}", f"serve.batch_size={batch}")
        post(url, cases[0][0], bearer(API_KEY))  # warm
        for n in (1, 16, 128):
            r = check_load(url, cases, n, f"batch_size {batch}, {n} clients")
            r["batch_size"] = batch
            rows.append(r)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    print("| serve.batch_size | clients | requests | requests/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch_size']} | {r['clients']} | {r['requests']} | {r['rps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} |")


if __name__ == "__main__":
    bench() if BENCH else main()

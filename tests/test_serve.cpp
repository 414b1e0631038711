// `chart serve`: its parts on their own (times, request rows, FHIR mapping, the clients file,
// batching, metrics), then the service end to end: a fine-tuned model, and a pretrained one served
// zero-shot, behind a real server on loopback, called by real clients (tests/check_serve.py) and
// checked against `chart predict`.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "core/error.h"
#include "core/files.h"
#include "core/sha256.h"
#include "core/time.h"
#include "core/utc_time.h"
#include "serve/access.h"
#include "serve/api_error.h"
#include "serve/batcher.h"
#include "serve/fhir_input.h"
#include "serve/metrics.h"
#include "serve/patient.h"
#include "tests/test_util.h"

namespace chart {
namespace {
using testing::contains;
using testing::TempDir;
namespace fs = std::filesystem;

// The ApiError a call throws (its status and code), or fails the test.
template <typename F>
serve::ApiError api_error_of(F f) {
  try {
    f();
  } catch (const serve::ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "no ApiError";
  return serve::ApiError(0, "", "");
}

TEST(UtcTime, ParsesTheIso8601FormsCallersSendAndRefusesTheRest) {
  EXPECT_EQ(parse_utc("1970-01-01"), 0);
  EXPECT_EQ(parse_utc("1970-01-02T00:00:00Z"), kMicrosPerDay);
  EXPECT_EQ(parse_utc("2020-01-31T12:00:00.5Z"), *parse_utc("2020-01-31T12:00:00Z") + 500000);
  EXPECT_EQ(parse_utc("2020-01-31T14:00:00+02:00"), parse_utc("2020-01-31T12:00:00Z"));
  EXPECT_EQ(parse_utc("1969-12-31T23:59:59Z"), -kMicrosPerSecond);
  EXPECT_EQ(parse_utc("2020-02-29"), *parse_utc("2020-03-01") - kMicrosPerDay);
  for (const char* bad : {"2019-02-29", "2020-13-01", "2020-01-31T25:00:00Z", "2020-01-31T12:00:00X", "2020-1-31",
                          "31/01/2020", "", "2020-01-31T12:00:00.Z", "2020-01-31T12:00:00+2:00"})
    EXPECT_FALSE(parse_utc(bad).has_value()) << bad;
  EXPECT_EQ(format_utc(*parse_utc("2020-01-31T12:34:56.9Z")), "2020-01-31T12:34:56Z");
}

TEST(ServeRequest, MedsRowsAreCheckedRowByRowAndCutAtPredictionTime) {
  const Json body = Json::parse(R"({"subject_id": 42, "prediction_time": "2020-01-01T00:00:00Z", "events": [
      {"code": "LAB//x", "time": "2019-06-01T00:00:00Z", "numeric_value": 1.5},
      {"code": "GENDER//F"},
      {"code": "DX//later", "time": "2021-01-01T00:00:00Z"},
      {"code": "DX//a", "time": "2019-01-01T00:00:00Z", "numeric_value": null}]})");
  const serve::PatientRecord r = serve::parse_patient(body);
  EXPECT_EQ(r.subject, "42");
  ASSERT_EQ(r.events.size(), 4u);
  int64_t dropped = 0;
  const data::Subject s = serve::to_subject(r, dropped);
  EXPECT_EQ(dropped, 1);
  ASSERT_EQ(s.events.size(), 3u);
  EXPECT_EQ(s.events[0].code, "GENDER//F");  // static first, then time order
  EXPECT_FALSE(s.events[0].has_time);
  EXPECT_EQ(s.events[1].code, "DX//a");
  EXPECT_EQ(s.events[2].code, "LAB//x");
  EXPECT_TRUE(s.events[2].has_value);
  EXPECT_FLOAT_EQ(s.events[2].value, 1.5f);

  auto with = [&](const char* key, Json v) {
    Json b = body;
    b[key] = v;
    return b;
  };
  EXPECT_TRUE(contains(api_error_of([&] { serve::parse_patient(with("prediction_time", 5)); }).what(), "prediction_time"));
  EXPECT_TRUE(contains(api_error_of([&] { serve::parse_patient(with("subject_id", Json::array())); }).what(), "subject_id"));
  const auto row = api_error_of([&] {
    serve::parse_patient(with("events", Json::parse(R"([{"code": "A", "time": null}, {"code": "B", "numeric_value": "7"}])")));
  });
  EXPECT_EQ(row.status(), 400);
  EXPECT_TRUE(contains(row.what(), "events[1].numeric_value")) << row.what();
  EXPECT_TRUE(contains(api_error_of([&] { serve::parse_patient(with("events", Json::parse(R"([{"code": ""}])"))); }).what(),
                       "events[0].code"));
  EXPECT_EQ(api_error_of([&] { serve::parse_patient(Json::array()); }).code(), "invalid_request");
}

TEST(ServeRequest, FhirResourcesMapToTheTrainingDataCodesAndTheRestIsCounted) {
  TempDir dir;
  write_file_atomic(dir / "map.yaml", "codes:\n  \"http://loinc.org|2345-7\": \"LAB//glucose//mg/dL\"\n");
  const serve::FhirMapping m = serve::FhirMapping::load((dir / "map.yaml").string());
  const Json bundle = Json::parse(R"({"resourceType": "Bundle", "entry": [
    {"resource": {"resourceType": "Patient", "id": "p9", "gender": "male", "birthDate": "1950-05-05"}},
    {"resource": {"resourceType": "Condition", "recordedDate": "2010-01-01",
                  "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1"},
                                      {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]}}},
    {"resource": {"resourceType": "Observation", "effectiveDateTime": "2010-01-02T08:00:00Z",
                  "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
                  "valueQuantity": {"value": 99, "unit": "mg/dL"}}},
    {"resource": {"resourceType": "Observation", "effectiveDateTime": "2010-01-02T08:00:00Z",
                  "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                  "valueQuantity": {"value": 13.1, "unit": "g/dL"}}},
    {"resource": {"resourceType": "Observation", "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]}}},
    {"resource": {"resourceType": "MedicationRequest", "authoredOn": "2010-01-03",
                  "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "860975"}]}}},
    {"resource": {"resourceType": "Condition", "onsetDateTime": "2010-01-01", "code": {"text": "no coding"}}},
    {"resource": {"resourceType": "Immunization", "id": "i1"}}]})");
  const serve::PatientRecord r = serve::record_from_fhir(bundle, m, *parse_utc("2011-01-01"));
  EXPECT_EQ(r.subject, "p9");
  std::vector<std::string> codes;
  for (const auto& e : r.events) codes.push_back(e.code);
  EXPECT_EQ(codes, (std::vector<std::string>{"GENDER//M", "MEDS_BIRTH", "DIAGNOSIS//ICD//10//E119", "LAB//glucose//mg/dL",
                                             "LAB//718-7//g/dL", "MEDICATION//RXNORM//860975"}));
  EXPECT_FLOAT_EQ(*r.events[3].value, 99.0f);
  EXPECT_EQ(r.unmapped, 3);  // the Observation without a time, the Condition without a coding, the Immunization

  // A CDS Hooks prefetch: resources and searchset Bundles by key.
  const Json prefetch = {{"patient", bundle["entry"][0]["resource"]},
                         {"conditions", {{"resourceType", "Bundle"}, {"entry", Json::array({bundle["entry"][1]})}}},
                         {"observations", nullptr}};
  EXPECT_EQ(serve::record_from_fhir(prefetch, m, 0).events.size(), 3u);
  EXPECT_EQ(api_error_of([&] { serve::record_from_fhir(Json(3), m, 0); }).status(), 400);
  write_file_atomic(dir / "bad.yaml", "systems: [1, 2]\n");
  EXPECT_THROW(serve::FhirMapping::load((dir / "bad.yaml").string()), Error);
}

TEST(ServeAccess, TheClientsFileIsCheckedEntryByEntryAndApiKeysAreMatchedByHash) {
  TempDir dir;
  const fs::path f = dir / "clients.yaml";
  write_file_atomic(f, "clients:\n  - id: a\n    tasks: [t1]\n    api_key_sha256: " + sha256_hex("k-a") +
                           "\n  - id: b\n    tasks: [\"*\"]\n    api_key_sha256: " + sha256_hex("k-b") + "\n    admin: true\n");
  const serve::Access a = serve::Access::load(f.string(), "");
  EXPECT_EQ(a.authenticate("Bearer k-a", 0).id, "a");
  EXPECT_TRUE(a.authenticate("Bearer k-b", 0).admin);
  EXPECT_EQ(api_error_of([&] { a.authenticate("", 0); }).code(), "missing_credentials");
  EXPECT_EQ(api_error_of([&] { a.authenticate("Basic k-a", 0); }).status(), 401);
  EXPECT_EQ(api_error_of([&] { a.authenticate("Bearer k-c", 0); }).code(), "bad_credentials");
  EXPECT_EQ(api_error_of([&] { a.authenticate("Bearer x.y.z", 0); }).status(), 401);
  EXPECT_EQ(api_error_of([&] { serve::Access::authorize(a.authenticate("Bearer k-a", 0), "t2"); }).status(), 403);
  serve::Access::authorize(a.authenticate("Bearer k-b", 0), "anything");

  auto refused = [&](const std::string& text, const std::string& audience = "") {
    write_file_atomic(f, text);
    try {
      serve::Access::load(f.string(), audience);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_TRUE(contains(refused("clients: []\n"), "no clients"));
  EXPECT_TRUE(contains(refused("clients:\n  - id: a\n    tasks: [t]\n"), "clients[0] (a): give exactly one credential"));
  EXPECT_TRUE(contains(refused("clients:\n  - id: a\n    tasks: [t]\n    api_key_sha256: abc\n"), "64 hex digits"));
  write_file_atomic(dir / "k.pem", "-----BEGIN PUBLIC KEY-----\nMA==\n-----END PUBLIC KEY-----\n");
  const std::string jwt_client = "clients:\n  - id: e\n    tasks: [t]\n    jwt_issuer: https://e\n    jwt_public_key: k.pem\n";
  EXPECT_TRUE(contains(refused(jwt_client), "serve.audience is not set"));
  EXPECT_EQ(refused(jwt_client, "https://me"), "(accepted)");
  EXPECT_TRUE(contains(refused("clients:\n  - id: e\n    tasks: [t]\n    jwt_issuer: https://e\n    jwt_public_key: nope.pem\n",
                               "https://me"), "nope.pem"));
  EXPECT_THROW(serve::Access::load("", ""), Error);
}

TEST(ServeAccess, TheRateLimitIsABucketPerClient) {
  serve::RateLimiter limiter;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.allow("a", 3, 100.0));
  EXPECT_FALSE(limiter.allow("a", 3, 100.0));
  EXPECT_TRUE(limiter.allow("b", 3, 100.0));   // another client's bucket
  EXPECT_TRUE(limiter.allow("a", 3, 120.5));   // 20 s refill one request at 3 a minute
  EXPECT_FALSE(limiter.allow("a", 3, 120.6));
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(limiter.allow("c", 0, 100.0));  // 0: unlimited
}

TEST(ServeBatcher, ConcurrentRequestsShareForwardPassesAndEachGetsItsOwnAnswer) {
  std::mutex m;
  std::vector<size_t> sizes;
  serve::Batcher batcher(
      8, 50.0,
      [](const std::vector<serve::BatchJob*>& jobs) {
        std::vector<serve::BatchResult> out;
        for (auto* j : jobs) {
          serve::BatchResult r;
          r.probability = static_cast<double>(j->tokens.size());
          out.push_back(r);
        }
        return out;
      },
      [&](size_t n) {
        std::lock_guard<std::mutex> lock(m);
        sizes.push_back(n);
      });
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int i = 1; i <= 20; ++i)
    threads.emplace_back([&, i] {
      serve::Batcher::Arrival arrival(batcher);  // announced, then "tokenizing"
      std::this_thread::sleep_for(std::chrono::milliseconds(i % 4));
      serve::BatchJob job;
      job.tokens.resize(static_cast<size_t>(i));
      if (arrival.submit(std::move(job)).get().probability != i) ++wrong;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong, 0);
  size_t total = 0, largest = 0;
  for (size_t n : sizes) total += n, largest = std::max(largest, n);
  EXPECT_EQ(total, 20u);
  EXPECT_GT(largest, 1u);   // they were batched
  EXPECT_LE(largest, 8u);   // never past max_batch

  // An arrival withdrawn (its request failed before its job was made) holds nothing up.
  { serve::Batcher::Arrival withdrawn(batcher); }
  EXPECT_EQ(batcher.submit(serve::BatchJob{}).get().probability, 0.0);

  // A batch that fails fails its requests, not the batcher.
  serve::Batcher failing(4, 0.0, [](const std::vector<serve::BatchJob*>&) -> std::vector<serve::BatchResult> { throw Error("boom"); },
                         [](size_t) {});
  EXPECT_THROW(failing.submit(serve::BatchJob{}).get(), Error);
  EXPECT_THROW(failing.submit(serve::BatchJob{}).get(), Error);
}

TEST(ServeMetrics, ThePrometheusTextHasCountersAndCumulativeHistograms) {
  serve::Metrics m;
  m.request("/v1/predict", 200, 0.004);
  m.request("/v1/predict", 200, 0.2);
  m.request("/v1/predict", 401, 0.0005);
  m.error("bad_credentials");
  m.batch(3);
  const std::string t = m.prometheus();
  EXPECT_TRUE(contains(t, "chart_requests_total{route=\"/v1/predict\",status=\"200\"} 2")) << t;
  EXPECT_TRUE(contains(t, "chart_request_seconds_bucket{route=\"/v1/predict\",le=\"0.005\"} 2")) << t;
  EXPECT_TRUE(contains(t, "chart_request_seconds_bucket{route=\"/v1/predict\",le=\"+Inf\"} 3")) << t;
  EXPECT_TRUE(contains(t, "chart_request_seconds_count{route=\"/v1/predict\"} 3")) << t;
  EXPECT_TRUE(contains(t, "chart_errors_total{code=\"bad_credentials\"} 1")) << t;
  EXPECT_TRUE(contains(t, "chart_batch_size_bucket{le=\"2\"} 0")) << t;
  EXPECT_TRUE(contains(t, "chart_batch_size_bucket{le=\"4\"} 1")) << t;
}

// The service end to end, as another institution's applications call it.
TEST(Serve, RealClientsAgainstARealServerGetWhatTheBatchCommandPredicts) {
  if (std::string(CHART_PYTHON_EXE).empty()) GTEST_SKIP() << "no CHART_PYTHON configured";
  TempDir dir;
  const fs::path meds = dir / "meds", tok = dir / "tok", pre = dir / "pre", ft = dir / "ft", pred = dir / "pred";
  const std::string threads = " --set train.threads=2";
  std::string out;
  ASSERT_EQ(testing::run_chart("synth --out " + meds.string() + " --subjects 400 --seed 4", &out), 0) << out;
  ASSERT_EQ(testing::run_chart("prepare --meds " + meds.string() + " --out " + tok.string(), &out), 0) << out;
  ASSERT_EQ(testing::run_chart("train " + testing::config("tiny.yaml") + " --set data.dir=" + tok.string() +
                                   " --set run.dir=" + pre.string() +
                                   " --set train.steps=3 --set model.context=64 --set train.eval_every=0" + threads, &out),
            0) << out;
  const std::string labels = (meds / "labels" / "mortality_365d").string();
  ASSERT_EQ(testing::run_chart("finetune " + testing::config("finetune/full.yaml") + " --set init.checkpoint=" +
                                   pre.string() + " --set task.labels=" + labels + " --set run.dir=" + ft.string() +
                                   " --set train.steps=3 --set train.eval_every=0" + threads, &out), 0) << out;
  ASSERT_EQ(testing::run_chart("predict " + testing::config("finetune/full.yaml") + " --set init.checkpoint=" +
                                   ft.string() + " --set task.labels=" + labels +
                                   " --set predict.split=held_out --set run.dir=" + pred.string() + threads, &out), 0)
      << out;
  // Zero-shot from the pretraining checkpoint: what the server's zero-shot task must answer.
  const fs::path zs = dir / "pred-zs";
  ASSERT_EQ(testing::run_chart("predict " + testing::config("tiny.yaml") + " --set init.checkpoint=" + pre.string() +
                                   " --set task.labels=" + labels + " --set predict.split=held_out" +
                                   " --set generate.outcome_codes=[MEDS_DEATH] --set generate.horizon=365d" +
                                   " --set generate.samples=8 --set run.dir=" + zs.string() + threads, &out), 0)
      << out;
  out.clear();
  const int rc = testing::run_python((testing::source_dir() / "tests" / "check_serve.py").string() + " " CHART_BINARY " " +
                                         (dir / "work").string() + " " + ft.string() + " " + meds.string() + " " +
                                         (pred / "predictions.parquet").string() + " " + pre.string() + " " +
                                         (zs / "predictions.parquet").string(), &out);
  if (rc == 77) GTEST_SKIP() << out;
  EXPECT_EQ(rc, 0) << out;
}

}  // namespace
}  // namespace chart

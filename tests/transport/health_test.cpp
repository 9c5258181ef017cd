// GET /health of a live in-process server (loopback, fake model): 200 while the model can
// run steps, 503 once it says it cannot any more (StepModel::unusable: a model split over
// ranks whose step failed on one rank, runtime/sharded_model.h), so that a supervisor or a
// load balancer takes the server out.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "raw_http.h"
#include "runtime/engine_fake_model.h"
#include "runtime/scheduler.h"
#include "server/byte_level_text.h"
#include "server/completion_service.h"
#include "server/http_server.h"

namespace fp4serve::test {
namespace {

using namespace std::chrono_literals;

// The fake model, with the unusable state a test switches on.
class BreakableModel : public runtime::FakeStepModel {
 public:
  BreakableModel() : FakeStepModel(runtime::FakeModelOptions{}) {}
  std::string unusable() const override { return broken.load() ? "a step failed on rank 1 of 2: injected" : ""; }
  std::atomic<bool> broken{false};
};

int health(int port) {
  RawConnection connection(port);
  EXPECT_TRUE(connection.send(get_request("/health")));
  const auto response = connection.read_response(5s);
  return response ? response->status : 0;
}

TEST(Health, Answers503OnceTheModelCanRunNoMoreSteps) {
  BreakableModel model;
  runtime::SchedulerMetrics metrics;
  runtime::Scheduler scheduler(model, {.max_num_seqs = 2, .max_waiting = 2, .max_batched_tokens = 64}, metrics);
  server::ByteLevelText text;
  server::ServiceConfig service_config;
  service_config.served_model_name = "fake-model";
  service_config.max_model_len = model.max_context();
  server::CompletionService service(text, scheduler, metrics, service_config);
  server::HttpServerConfig http;
  http.port = 0;
  server::HttpServer server(service, scheduler, metrics, http);
  const int port = server.bind();
  std::thread serving([&] { server.serve(); });

  EXPECT_EQ(health(port), 200);
  model.broken.store(true);
  EXPECT_EQ(health(port), 503);

  server.drain_and_stop(1s);
  serving.join();
}

}  // namespace
}  // namespace fp4serve::test

// GET /metrics: the runtime's counters and histograms in the Prometheus text
// format (0.0.4) under vLLM's metric names, so dashboards and routers built
// for vLLM scrape fp4serve unchanged.
#pragma once

#include <string>

#include "runtime/scheduler.h"
#include "runtime/scheduler_metrics.h"

namespace fp4serve::server {

std::string render_prometheus(const runtime::SchedulerMetrics& metrics, const runtime::Scheduler::Load& load,
                              const std::string& model_name);

}  // namespace fp4serve::server

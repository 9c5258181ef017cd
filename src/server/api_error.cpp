#include "server/api_error.h"

#include "text/utf8.h"

namespace fp4serve::server {

std::string error_type_for_status(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 408: return "timeout_error";
    case 413: return "invalid_request_error";
    case 422: return "unprocessable_entity_error";
    case 429: return "rate_limit_error";
    case 501: return "not_implemented_error";
    case 503: return "service_unavailable_error";
    default: return status >= 500 ? "internal_server_error" : "invalid_request_error";
  }
}

nlohmann::json ApiError::to_json() const {
  nlohmann::json error = {
      {"message", text::utf8_lossy(what())},  // messages may quote input
      {"type", error_type_for_status(status_)},
      {"param", param_.empty() ? nlohmann::json(nullptr) : nlohmann::json(param_)},
      {"code", code_.empty() ? nlohmann::json(status_) : nlohmann::json(code_)},
  };
  error.update(extra);
  return {{"error", error}};
}

}  // namespace fp4serve::server

// Errors as the OpenAI API reports them: an HTTP status plus the nested
// {"error": {"message", "type", "param", "code"}} object. The OpenAI SDKs pick
// their exception class from the status, so the status is what matters most.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "base/error.h"

namespace fp4serve::server {

class ApiError : public Error {
 public:
  ApiError(int status, std::string message, std::string param = {}, std::string code = {})
      : Error(message), status_(status), param_(std::move(param)), code_(std::move(code)) {}

  int status() const { return status_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }
  // Extra fields merged into the error object (e.g. the token counts of a context overflow).
  nlohmann::json extra = nlohmann::json::object();

  nlohmann::json to_json() const;

 private:
  int status_;
  std::string param_;
  std::string code_;
};

// The OpenAI error `type` for a status.
std::string error_type_for_status(int status);

// 400 invalid_request_error about one request field.
[[noreturn]] inline void bad_request(const std::string& param, const std::string& message) {
  throw ApiError(400, message, param);
}

}  // namespace fp4serve::server

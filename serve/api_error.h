// What a request gets back when it cannot be answered: an HTTP status, a stable machine-readable
// code and a message naming the field, header or row at fault. Never a stack trace.
#pragma once
#include <stdexcept>
#include <string>

namespace chart::serve {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string code, const std::string& message)
      : std::runtime_error(message), status_(status), code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string code_;
};

// 400 with code "invalid_request": the body parsed but a field is missing, of the wrong type or out of range.
[[noreturn]] inline void bad_field(const std::string& message) { throw ApiError(400, "invalid_request", message); }

}  // namespace chart::serve

// chart::Error: the one exception type user-facing failures raise. Its message is one line that
// names the file, key or row at fault; the CLI prints it (and the hint, if any) and exits non-zero.
#pragma once
#include <stdexcept>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace chart {

class Error : public std::runtime_error {
 public:
  explicit Error(std::string what, std::string hint = {})
      : std::runtime_error(std::move(what)), hint_(std::move(hint)) {}
  // What the user can do about it (printed as "---> HINT: ..."); may be empty.
  const std::string& hint() const { return hint_; }

 private:
  std::string hint_;
};

// fail("{}: bad value", path): throw chart::Error with a formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

// The first line of an exception's text (c10 errors append a C++ backtrace to theirs).
inline std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace chart

// Files that are either whole or absent: a reader never sees a half-written file or directory
// that looks complete, even on shared storage after a crash. Write under a temporary name,
// fsync, rename, fsync the parent directory.
#pragma once
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace chart {
namespace fs = std::filesystem;

std::string read_file(const fs::path& path);  // throws chart::Error naming the path
// Writes `bytes` to `path` through a temporary sibling and a rename.
void write_file_atomic(const fs::path& path, std::string_view bytes);
void fsync_file(const fs::path& path);
void fsync_dir(const fs::path& dir);

// A directory built under a temporary sibling name ("<final>.tmp-<pid>") and renamed into place
// by commit(). If commit() is never reached (error, crash, exception), the temporary is removed
// (or, after a crash, left under a name no reader mistakes for the real one).
// Removes what killed writers left in `dir`: "<name>.tmp-<pid>" and "<name>.old-<pid>" entries
// whose process no longer runs on this host (its own pid and live ones are kept), and the
// `also` names given (whole). Call it only while holding the directory's run lock, so that no
// live writer on another host can own them. Returns what was removed, for the log.
std::vector<fs::path> remove_stale_temporaries(const fs::path& dir, const std::vector<fs::path>& also = {});

class StagingDir {
 public:
  explicit StagingDir(fs::path final_path);
  ~StagingDir();
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;

  const fs::path& path() const { return tmp_; }  // where to write
  const fs::path& final_path() const { return final_; }
  // fsyncs every file inside, renames onto final_path (which must not exist, or `replace` it).
  void commit(bool replace = false);

 private:
  fs::path final_, tmp_;
  bool committed_ = false;
};

}  // namespace chart

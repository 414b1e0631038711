# Finds chart's dependencies. docs/build.md explains each choice and how to point the build
# at a cluster's own LibTorch, Arrow or CUDA instead of the wheels scripts/setup.sh installs.
#
#   LibTorch      find_package(Torch): Torch_DIR, or CMAKE_PREFIX_PATH, or the `torch` wheel of
#                 CHART_PYTHON (torch.utils.cmake_prefix_path)
#   Arrow/Parquet CHART_ARROW_ROOT (an Arrow C++ install with ArrowConfig.cmake), else the
#                 headers and libraries bundled in CHART_PYTHON's `pyarrow` wheel
#   yaml-cpp, fmt, GoogleTest, nlohmann-json, OpenSSL (libcrypto, found in core/CMakeLists.txt):
#                 the system's packages (Debian: libyaml-cpp-dev libfmt-dev libgtest-dev
#                 nlohmann-json3-dev libssl-dev)
#   CUDA          nvcc from CMAKE_CUDA_COMPILER, PATH or /usr/local/cuda; without it, a CPU-only build

set(CHART_PYTHON "" CACHE FILEPATH "Python interpreter whose torch and pyarrow wheels the build uses")
set(CHART_ARROW_ROOT "" CACHE PATH "Arrow C++ install prefix (default: the pyarrow wheel)")

find_program(CHART_CCACHE ccache)
if(CHART_CCACHE)
  set(CMAKE_CXX_COMPILER_LAUNCHER "${CHART_CCACHE}")
  set(CMAKE_CUDA_COMPILER_LAUNCHER "${CHART_CCACHE}")
endif()

function(chart_python_query out code)
  execute_process(COMMAND "${CHART_PYTHON}" -c "${code}" OUTPUT_VARIABLE value
                  RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "chart: '${CHART_PYTHON} -c \"${code}\"' failed:\n${err}\n"
                        "---> HINT: run scripts/setup.sh, which installs torch and pyarrow into .venv")
  endif()
  set(${out} "${value}" PARENT_SCOPE)
endfunction()

# ---- CUDA: decide before Torch, whose CMake config needs the toolkit when torch was built with it.
set(CHART_HAVE_CUDA OFF)
if(CHART_CUDA)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # Our kernels choose their own -gencode flags (kernels/CMakeLists.txt).
    set(CMAKE_CUDA_ARCHITECTURES OFF)
    enable_language(CUDA)
    set(CHART_HAVE_CUDA ON)
  endif()
endif()

# ---- LibTorch
if(CHART_PYTHON AND NOT Torch_DIR)
  chart_python_query(_torch_prefix "import torch.utils; print(torch.utils.cmake_prefix_path)")
  list(APPEND CMAKE_PREFIX_PATH "${_torch_prefix}")
  chart_python_query(_torch_cuda "import torch; print(torch.version.cuda or '')")
  if(_torch_cuda AND NOT CHART_HAVE_CUDA)
    message(FATAL_ERROR "chart: this torch (${CHART_PYTHON}) was built with CUDA ${_torch_cuda}, and its "
      "CMake config needs the CUDA toolkit, but no nvcc was found.\n"
      "---> HINT: install the CUDA toolkit (or pass -DCMAKE_CUDA_COMPILER=/path/to/nvcc), or use a "
      "CPU-only torch wheel for a CPU-only build.")
  endif()
endif()
# With no GPU to probe, torch's CMake would guess architectures; name the ones we build for.
if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(ENV{TORCH_CUDA_ARCH_LIST} "8.0;9.0")
endif()
find_package(Torch REQUIRED)
# TorchConfig exports the CUDA flags of its own build into CMAKE_CUDA_FLAGS; ours are explicit.
set(CMAKE_CUDA_FLAGS "")
message(STATUS "chart: LibTorch ${Torch_VERSION} from ${Torch_DIR}")
add_library(chart_torch INTERFACE)
target_link_libraries(chart_torch INTERFACE ${TORCH_LIBRARIES})
# libtorch.so from the wheel exports a few std::filesystem functions (remove_all, ...) linked in
# from its build's older libstdc++; they crash when called with this compiler's types. Naming
# libstdc++ first among an executable's libraries makes the dynamic linker bind those symbols
# to the system libstdc++ instead.
target_link_options(chart_torch INTERFACE "SHELL:-Wl,--push-state,--no-as-needed -lstdc++ -Wl,--pop-state")

# ---- Arrow / Parquet
if(CHART_ARROW_ROOT)
  find_package(Arrow REQUIRED PATHS "${CHART_ARROW_ROOT}" NO_DEFAULT_PATH)
  find_package(Parquet REQUIRED PATHS "${CHART_ARROW_ROOT}" NO_DEFAULT_PATH)
  add_library(chart_arrow INTERFACE)
  target_link_libraries(chart_arrow INTERFACE Parquet::parquet_shared Arrow::arrow_shared)
else()
  if(NOT CHART_PYTHON)
    message(FATAL_ERROR "chart: set CHART_PYTHON (a Python with pyarrow) or CHART_ARROW_ROOT.\n"
                        "---> HINT: scripts/setup.sh does this for you")
  endif()
  chart_python_query(_pa "import pyarrow as pa; print(pa.get_include()); print(pa.get_library_dirs()[0]); print(pa.__version__)")
  string(REPLACE "\n" ";" _pa "${_pa}")
  list(GET _pa 0 _pa_include)
  list(GET _pa 1 _pa_libdir)
  list(GET _pa 2 _pa_version)
  # The wheel ships versioned sonames only (libarrow.so.2200), not the libarrow.so link.
  file(GLOB _arrow_lib "${_pa_libdir}/libarrow.so.[0-9]*")
  file(GLOB _parquet_lib "${_pa_libdir}/libparquet.so.[0-9]*")
  list(FILTER _arrow_lib EXCLUDE REGEX "\\.so\\.[0-9]+\\.")
  list(FILTER _parquet_lib EXCLUDE REGEX "\\.so\\.[0-9]+\\.")
  if(NOT _arrow_lib OR NOT _parquet_lib)
    message(FATAL_ERROR "chart: no libarrow.so.N / libparquet.so.N in ${_pa_libdir}")
  endif()
  add_library(chart_arrow INTERFACE)
  target_include_directories(chart_arrow SYSTEM INTERFACE "${_pa_include}")
  target_link_libraries(chart_arrow INTERFACE "${_parquet_lib}" "${_arrow_lib}")
  message(STATUS "chart: Arrow/Parquet ${_pa_version} from the pyarrow wheel (${_arrow_lib})")
endif()

# ---- yaml-cpp, fmt, nlohmann-json, GoogleTest
find_package(yaml-cpp REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(fmt REQUIRED)
# The torch wheel bundles its own fmt headers (a newer fmt) in an include directory that every
# torch user gets. Put the fmt we link ahead of it, or the headers and the library disagree.
get_target_property(_fmt_inc fmt::fmt INTERFACE_INCLUDE_DIRECTORIES)
find_path(CHART_FMT_HEADER_DIR fmt/format.h PATHS ${_fmt_inc} NO_CACHE REQUIRED)
set(_fmt_shim "${CMAKE_BINARY_DIR}/fmt-include")
file(MAKE_DIRECTORY "${_fmt_shim}")
file(CREATE_LINK "${CHART_FMT_HEADER_DIR}/fmt" "${_fmt_shim}/fmt" SYMBOLIC)
add_library(chart_fmt INTERFACE)
target_include_directories(chart_fmt BEFORE INTERFACE "${_fmt_shim}")
target_link_libraries(chart_fmt INTERFACE fmt::fmt)
message(STATUS "chart: fmt ${fmt_VERSION} (${CHART_FMT_HEADER_DIR}), yaml-cpp ${yaml-cpp_VERSION}, "
               "nlohmann-json ${nlohmann_json_VERSION}")

if(CHART_TESTS)
  find_package(GTest REQUIRED)
endif()

if(CHART_HAVE_CUDA)
  message(STATUS "chart: CUDA kernels will be built with ${CMAKE_CUDA_COMPILER} ${CMAKE_CUDA_COMPILER_VERSION}")
else()
  message(STATUS "chart: no nvcc found: CPU-only build (attention uses the LibTorch reference path)")
endif()

# CMake toolchain for libaom in the edge Worker (wasm32-unknown-unknown): clang, portable C
# (no SIMD, no runtime CPU detection), one thread, no file I/O. scripts/lib.sh points
# CMAKE_TOOLCHAIN_FILE_wasm32_unknown_unknown here; the compiler flags come from
# CFLAGS/CXXFLAGS_wasm32_unknown_unknown.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR wasm32)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(CMAKE_C_COMPILER clang)
set(CMAKE_CXX_COMPILER clang++)
find_program(CMAKE_AR llvm-ar)
find_program(CMAKE_RANLIB llvm-ranlib)
set(AOM_TARGET_CPU generic CACHE STRING "")
set(CONFIG_MULTITHREAD 0 CACHE STRING "")
set(CONFIG_RUNTIME_CPU_DETECT 0 CACHE STRING "")
set(CONFIG_WEBM_IO 0 CACHE STRING "")
set(CONFIG_LIBYUV 0 CACHE STRING "")

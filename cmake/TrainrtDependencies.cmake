# Dependencies of libtrainrt, all from Debian packages (see README.md):
#   oneTBB (libtbb-dev), spdlog (libspdlog-dev), oneDNN (libdnnl-dev), zlib (zlib1g-dev),
#   OpenMP (to size Debian oneDNN's OpenMP thread pool). CUDA is optional and only its
#   headers are used at build time (DESIGN decision 11: the library loads CUDA at run time).

find_package(Threads REQUIRED)
find_package(TBB 2021 REQUIRED COMPONENTS tbb)
find_package(spdlog REQUIRED)
find_package(DNNL 2.6 REQUIRED)
find_package(ZLIB REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)

# CUDA: AUTO uses the toolkit's headers when present; ON requires them; OFF ignores them.
set(TRAINRT_WITH_CUDA OFF)
if(NOT TRAINRT_CUDA STREQUAL "OFF")
  if(TRAINRT_CUDA STREQUAL "ON")
    find_package(CUDAToolkit REQUIRED)
  else()
    find_package(CUDAToolkit QUIET)
  endif()
  if(CUDAToolkit_FOUND)
    set(TRAINRT_WITH_CUDA ON)
  endif()
endif()
message(STATUS "trainrt: CUDA support ${TRAINRT_WITH_CUDA} (TRAINRT_CUDA=${TRAINRT_CUDA}"
               "${CUDAToolkit_VERSION}${CUDAToolkit_VERSION_MAJOR})")

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

# MPI (DESIGN decision 8): only the separate library trainrt::mpi links it, so libtrainrt and
# single-process applications never need it. AUTO builds trainrt::mpi when MPI's C bindings
# are found (Debian: libopenmpi-dev openmpi-bin); ON requires them; OFF skips it.
set(TRAINRT_MPI AUTO CACHE STRING "MPI communicator (trainrt::mpi): AUTO (build when MPI is found), ON (require it), OFF")
set_property(CACHE TRAINRT_MPI PROPERTY STRINGS AUTO ON OFF)
set(TRAINRT_WITH_MPI OFF)
if(NOT TRAINRT_MPI STREQUAL "OFF")
  enable_language(C)  # FindMPI's C component probes with the C compiler
  if(TRAINRT_MPI STREQUAL "ON")
    find_package(MPI REQUIRED COMPONENTS C)
  else()
    find_package(MPI QUIET COMPONENTS C)
  endif()
  if(MPI_C_FOUND)
    set(TRAINRT_WITH_MPI ON)
  endif()
endif()
if(TRAINRT_WITH_MPI)
  message(STATUS "trainrt: MPI communicator ON (TRAINRT_MPI=${TRAINRT_MPI}; MPI ${MPI_C_VERSION}; "
                 "launcher ${MPIEXEC_EXECUTABLE})")
else()
  message(STATUS "trainrt: MPI communicator OFF (TRAINRT_MPI=${TRAINRT_MPI})")
endif()

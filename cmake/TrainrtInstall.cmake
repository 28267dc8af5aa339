# Install rules: headers, libtrainrt (and trainrt_mpi when built), the CMake package
# (trainrtConfig.cmake, trainrtConfigVersion.cmake, trainrtTargets.cmake) and trainrt.pc.
# Included by the top-level CMakeLists.txt after every library target exists. The tools
# install themselves (tools/CMakeLists.txt).
#
# The package config and the .pc file are written from the targets' link libraries, not
# from a hand-kept list: every imported target a library links must be described in
# trainrt_describe_dependency() below, or configuring fails and names it. A static
# libtrainrt hands all its private dependencies to its consumers ($<LINK_ONLY:...>), so
# they are found again with find_dependency; a shared one hands on none.

include(CMakePackageConfigHelpers)

set(TRAINRT_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/trainrt"
    CACHE STRING "Where trainrtConfig.cmake is installed, relative to the prefix")
mark_as_advanced(TRAINRT_INSTALL_CMAKEDIR)

# ---- dependency table --------------------------------------------------------------------

# trainrt_describe_dependency(<imported target> FIND <find_dependency arguments...>
#                             [PC_REQUIRES <pkg-config module>] [PC_LIBS <linker flags...>])
# FIND: what the package config passes to find_dependency to define the target again.
# PC_REQUIRES / PC_LIBS: what trainrt.pc lists for a static library (Requires.private, or
# Libs.private where the dependency ships no .pc file).
function(trainrt_describe_dependency target)
  cmake_parse_arguments(D "" "PC_REQUIRES" "FIND;PC_LIBS" ${ARGN})
  if(NOT D_FIND)
    message(FATAL_ERROR "trainrt_describe_dependency(${target}): FIND arguments are missing")
  endif()
  string(MAKE_C_IDENTIFIER "${target}" id)
  set(TRAINRT_DEP_${id}_DESCRIBED TRUE PARENT_SCOPE)
  set(TRAINRT_DEP_${id}_FIND "${D_FIND}" PARENT_SCOPE)
  set(TRAINRT_DEP_${id}_PC_REQUIRES "${D_PC_REQUIRES}" PARENT_SCOPE)
  set(TRAINRT_DEP_${id}_PC_LIBS "${D_PC_LIBS}" PARENT_SCOPE)
endfunction()

# "-L<dir> -l<name>" for a library file ("-l<name>" alone in a directory the linker searches).
function(trainrt_library_flags out path)
  get_filename_component(dir "${path}" DIRECTORY)
  get_filename_component(name "${path}" NAME_WE)
  string(REGEX REPLACE "^lib" "" name "${name}")
  set(flags "-l${name}")
  if(NOT dir IN_LIST CMAKE_CXX_IMPLICIT_LINK_DIRECTORIES)
    set(flags "-L${dir}" "${flags}")
  endif()
  set(${out} "${flags}" PARENT_SCOPE)
endfunction()

if(TARGET DNNL::dnnl)
  trainrt_library_flags(_trainrt_dnnl_flags "${DNNL_LIBRARY}")
endif()
set(_trainrt_omp_flags "")
foreach(_lib IN LISTS OpenMP_CXX_LIB_NAMES)
  list(APPEND _trainrt_omp_flags "-l${_lib}")
endforeach()
separate_arguments(_trainrt_thread_flags UNIX_COMMAND "${CMAKE_THREAD_LIBS_INIT}")

trainrt_describe_dependency(TBB::tbb FIND TBB 2021 COMPONENTS tbb PC_REQUIRES tbb)
trainrt_describe_dependency(spdlog::spdlog FIND spdlog PC_REQUIRES spdlog)
trainrt_describe_dependency(DNNL::dnnl FIND DNNL 2.6 PC_LIBS ${_trainrt_dnnl_flags})
trainrt_describe_dependency(ZLIB::ZLIB FIND ZLIB PC_REQUIRES zlib)
trainrt_describe_dependency(OpenMP::OpenMP_CXX FIND OpenMP COMPONENTS CXX PC_LIBS ${_trainrt_omp_flags})
trainrt_describe_dependency(Threads::Threads FIND Threads PC_LIBS ${_trainrt_thread_flags})
# trainrt_mpi has no .pc file (MPI implementations name theirs differently): no PC_ entries.
trainrt_describe_dependency(MPI::MPI_C FIND MPI COMPONENTS C)
trainrt_describe_dependency(MPI::MPI_CXX FIND MPI COMPONENTS CXX)

# trainrt_consumer_dependencies(<library target> <out_find> <out_pc_requires> <out_pc_libs>)
# What a consumer of <library target> must link besides it: for a static library every
# link library, for a shared one its INTERFACE_LINK_LIBRARIES. <out_find> gets one
# "find_dependency(...)" argument string per imported target; the pc outputs get the
# pkg-config modules and the linker flags. libtrainrt's own targets are skipped.
function(trainrt_consumer_dependencies target out_find out_requires out_libs)
  get_target_property(type ${target} TYPE)
  get_target_property(items ${target} INTERFACE_LINK_LIBRARIES)
  if(NOT items)
    set(items "")
  endif()
  if(type STREQUAL "STATIC_LIBRARY")
    get_target_property(private_items ${target} LINK_LIBRARIES)
    if(private_items)
      list(APPEND items ${private_items})
    endif()
  endif()
  set(find "")
  set(requires "")
  set(libs "")
  foreach(item IN LISTS items)
    while(item MATCHES "^\\$<LINK_ONLY:(.*)>$")  # a static library's private items, maybe nested
      set(item "${CMAKE_MATCH_1}")
    endwhile()
    if(item MATCHES "^\\$<" OR item MATCHES "^-")
      message(FATAL_ERROR "cmake/TrainrtInstall.cmake: ${target} links '${item}', which the package config "
                          "and trainrt.pc cannot describe; link an imported target or a library name instead")
    endif()
    if(item MATCHES "^trainrt(::|_|$)" OR item STREQUAL "")
      continue()  # libtrainrt's own targets are exported beside it
    endif()
    if(TARGET ${item})
      get_target_property(aliased ${item} ALIASED_TARGET)
      if(aliased AND aliased MATCHES "^trainrt")
        continue()
      endif()
    endif()
    # A name with "::" is always a target, even where it is not visible here (an imported
    # target found by find_package in a subdirectory is local to that directory).
    if(item MATCHES "::" OR TARGET ${item})
      string(MAKE_C_IDENTIFIER "${item}" id)
      if(NOT TRAINRT_DEP_${id}_DESCRIBED)
        message(FATAL_ERROR "cmake/TrainrtInstall.cmake: ${target} links the imported target ${item}, which has "
                            "no trainrt_describe_dependency() entry: add one so that installed consumers find it")
      endif()
      string(JOIN " " args ${TRAINRT_DEP_${id}_FIND})
      list(APPEND find "${args}")
      list(APPEND requires ${TRAINRT_DEP_${id}_PC_REQUIRES})
      list(APPEND libs ${TRAINRT_DEP_${id}_PC_LIBS})
    elseif(IS_ABSOLUTE "${item}")
      trainrt_library_flags(flags "${item}")
      list(APPEND libs ${flags})
    else()
      list(APPEND libs "-l${item}")
    endif()
  endforeach()
  list(REMOVE_DUPLICATES find)
  list(REMOVE_DUPLICATES requires)
  list(REMOVE_DUPLICATES libs)
  set(${out_find} "${find}" PARENT_SCOPE)
  set(${out_requires} "${requires}" PARENT_SCOPE)
  set(${out_libs} "${libs}" PARENT_SCOPE)
endfunction()

# find_dependency() lines for the config file, one per entry of the list named by `var`,
# each after `indent`.
function(trainrt_find_dependency_lines out var indent)
  set(text "")
  foreach(args IN LISTS ${var})
    string(APPEND text "${indent}find_dependency(${args})\n")
  endforeach()
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# ---- libtrainrt, headers, trainrt::mpi ---------------------------------------------------

install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/trainrt" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
        COMPONENT Development FILES_MATCHING PATTERN "*.hpp")

set_target_properties(trainrt PROPERTIES EXPORT_NAME trainrt)
install(TARGETS trainrt EXPORT trainrtTargets
        ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Development
        LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Runtime NAMELINK_COMPONENT Development
        RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT Runtime
        INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(EXPORT trainrtTargets NAMESPACE trainrt:: DESTINATION "${TRAINRT_INSTALL_CMAKEDIR}"
        FILE trainrtTargets.cmake COMPONENT Development)
trainrt_consumer_dependencies(trainrt _trainrt_find _trainrt_pc_requires _trainrt_pc_libs)
trainrt_find_dependency_lines(TRAINRT_CONFIG_FIND_DEPENDENCIES _trainrt_find "")

# trainrt_mpi (built when MPI is found) goes into its own export file, loaded only for
# find_package(trainrt COMPONENTS mpi), so that a consumer without MPI still gets trainrt::trainrt.
set(TRAINRT_CONFIG_HAS_MPI FALSE)
set(TRAINRT_CONFIG_MPI_FIND_DEPENDENCIES "")
set(TRAINRT_CONFIG_MPI_FIND_QUIET "")
if(TARGET trainrt_mpi)
  set(TRAINRT_CONFIG_HAS_MPI TRUE)
  set_target_properties(trainrt_mpi PROPERTIES EXPORT_NAME mpi)
  install(TARGETS trainrt_mpi EXPORT trainrtMpiTargets
          ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Development
          LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Runtime NAMELINK_COMPONENT Development
          RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT Runtime
          INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
  install(EXPORT trainrtMpiTargets NAMESPACE trainrt:: DESTINATION "${TRAINRT_INSTALL_CMAKEDIR}"
          FILE trainrtMpiTargets.cmake COMPONENT Development)
  trainrt_consumer_dependencies(trainrt_mpi _trainrt_mpi_find _trainrt_mpi_pc_unused _trainrt_mpi_pc_unused)
  trainrt_find_dependency_lines(TRAINRT_CONFIG_MPI_FIND_DEPENDENCIES _trainrt_mpi_find "    ")
  # The same packages, looked for quietly, for find_package(... OPTIONAL_COMPONENTS mpi).
  foreach(_args IN LISTS _trainrt_mpi_find)
    string(REGEX MATCH "^[^ ]+" _pkg "${_args}")
    string(APPEND TRAINRT_CONFIG_MPI_FIND_QUIET
           "    find_package(${_args} QUIET)\n    if(NOT ${_pkg}_FOUND)\n      set(_trainrt_mpi_deps_found FALSE)\n    endif()\n")
  endforeach()
endif()

# ---- trainrtConfig.cmake, trainrtConfigVersion.cmake -------------------------------------

get_target_property(_trainrt_type trainrt TYPE)
if(_trainrt_type STREQUAL "SHARED_LIBRARY")
  set(TRAINRT_CONFIG_SHARED TRUE)
else()
  set(TRAINRT_CONFIG_SHARED FALSE)
endif()
configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/trainrtConfig.cmake.in"
                              "${PROJECT_BINARY_DIR}/cmake/trainrtConfig.cmake"
                              INSTALL_DESTINATION "${TRAINRT_INSTALL_CMAKEDIR}")
write_basic_package_version_file("${PROJECT_BINARY_DIR}/cmake/trainrtConfigVersion.cmake"
                                 VERSION "${PROJECT_VERSION}" COMPATIBILITY SameMajorVersion)
set(_trainrt_config_files "${PROJECT_BINARY_DIR}/cmake/trainrtConfig.cmake"
                          "${PROJECT_BINARY_DIR}/cmake/trainrtConfigVersion.cmake")
if(TARGET DNNL::dnnl AND _trainrt_find MATCHES "(^|;)DNNL ")
  list(APPEND _trainrt_config_files "${PROJECT_SOURCE_DIR}/cmake/FindDNNL.cmake")  # for find_dependency(DNNL)
endif()
install(FILES ${_trainrt_config_files} DESTINATION "${TRAINRT_INSTALL_CMAKEDIR}" COMPONENT Development)

# ---- trainrt.pc --------------------------------------------------------------------------
# Written at install time, so that `cmake --install build --prefix DIR` gets DIR in it:
# the configure step leaves @CMAKE_INSTALL_PREFIX@ for the install script to fill in.

set(TRAINRT_PC_PREFIX "@CMAKE_INSTALL_PREFIX@")
foreach(_kind LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${_kind}}")
    set(TRAINRT_PC_${_kind} "${CMAKE_INSTALL_${_kind}}")
  else()
    set(TRAINRT_PC_${_kind} "\${prefix}/${CMAKE_INSTALL_${_kind}}")
  endif()
endforeach()
# A shared libtrainrt carries its dependencies itself; a static one lists them as private.
set(TRAINRT_PC_REQUIRES_PRIVATE "")
set(TRAINRT_PC_LIBS_PRIVATE "")
if(NOT TRAINRT_CONFIG_SHARED)
  string(JOIN " " TRAINRT_PC_REQUIRES_PRIVATE ${_trainrt_pc_requires})
  string(JOIN " " TRAINRT_PC_LIBS_PRIVATE ${_trainrt_pc_libs})
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    foreach(_module IN LISTS _trainrt_pc_requires)
      execute_process(COMMAND "${PKG_CONFIG_EXECUTABLE}" --exists "${_module}" RESULT_VARIABLE _rc)
      if(NOT _rc EQUAL 0)
        message(WARNING "trainrt.pc requires the pkg-config module '${_module}', which pkg-config does not "
                        "find here: `pkg-config --static --libs trainrt` will fail until it is installed")
      endif()
    endforeach()
  endif()
endif()
configure_file("${PROJECT_SOURCE_DIR}/cmake/trainrt.pc.in" "${PROJECT_BINARY_DIR}/cmake/trainrt.pc.stage" @ONLY)

if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(_trainrt_pc_dir "\$ENV{DESTDIR}${CMAKE_INSTALL_LIBDIR}/pkgconfig")
else()
  set(_trainrt_pc_dir "\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig")
endif()
install(CODE "
  set(_trainrt_pc \"${_trainrt_pc_dir}/trainrt.pc\")
  message(STATUS \"Installing: \${_trainrt_pc}\")
  configure_file(\"${PROJECT_BINARY_DIR}/cmake/trainrt.pc.stage\" \"\${_trainrt_pc}\" @ONLY)
  list(APPEND CMAKE_INSTALL_MANIFEST_FILES \"\${_trainrt_pc}\")
" COMPONENT Development)
